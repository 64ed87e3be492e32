//! Helpers of the administration tests: the `m365sync` binary run against a test database
//! through a configuration file and key file of its own, and a second store on the same
//! database with the same key, so tests can check what the commands wrote (secrets included).

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

use m365sync_store::{SecretKey, Store};

use crate::support::TestDb;

/// One database, the configuration the binary reads, and a store sharing its key.
pub struct Admin {
    pub db: TestDb,
    /// Opened with the key file the binary uses.
    pub store: Store,
    pub dir: PathBuf,
    pub config: PathBuf,
}

/// What a command printed, and whether it succeeded.
pub struct Run {
    pub ok: bool,
    /// The exit code (0 done, 1 failed, 2 usage, 3 partly done).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Both streams, for "never appears anywhere" checks and failure messages.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// Stdout parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.all()))
    }
}

static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Admin {
    pub async fn new(db: TestDb) -> Admin {
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("m365sync-admin-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let key = SecretKey::generate();
        let key_file = dir.join("key");
        std::fs::write(&key_file, key.to_base64()).unwrap();
        let config = dir.join("m365sync.toml");
        std::fs::write(
            &config,
            format!(
                "database_url = \"{}\"\nkey_file = \"{}\"\n",
                db.url,
                key_file.display()
            ),
        )
        .unwrap();
        let store = Store::open(&db.url, key).await.unwrap();
        Admin {
            db,
            store,
            dir,
            config,
        }
    }

    /// The binary with this database's configuration (and no key in the environment).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_m365sync"));
        c.arg("--config")
            .arg(&self.config)
            .args(args)
            .current_dir(&self.dir)
            .env_remove("M365SYNC_SECRET_KEY")
            .env("M365SYNC_LOG", "warn");
        c
    }

    /// Runs a command to its end on a blocking thread (the simulator shares the runtime).
    pub async fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[]).await
    }

    /// Runs a command with extra environment variables.
    pub async fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut c = self.command(args);
        for (k, v) in env {
            c.env(k, v);
        }
        let out: Output = tokio::task::spawn_blocking(move || c.output().unwrap())
            .await
            .unwrap();
        Run {
            ok: out.status.success(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Closes both stores and removes the database and the files.
    pub async fn finish(self) {
        self.store.close().await;
        self.db.drop_db().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
