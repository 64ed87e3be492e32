//! Shared test harness: the simulator client (shared with the simulator crate's own tests) and
//! a fresh database per test on SQLite or PostgreSQL.

#![allow(dead_code)]

#[path = "../../crates/sim/tests/all/client.rs"]
mod sim_client;

pub use sim_client::*;

/// A fresh database for one test: a SQLite file in a temp dir, or a PostgreSQL database created
/// on the local server (`M365SYNC_TEST_PG`, default `postgres://postgres@127.0.0.1:5432/test`)
/// and dropped afterwards. PostgreSQL tests never skip: a missing server fails them.
pub struct TestDb {
    pub url: String,
    pub store: m365sync_store::Store,
    /// The key sealing the store's secrets, base64, for service processes the test starts.
    pub key_base64: String,
    cleanup: Option<(String, String)>,
    dir: Option<std::path::PathBuf>,
}

static DB_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl TestDb {
    /// Both backends, for tests that must hold on each.
    pub async fn both() -> Vec<TestDb> {
        vec![Self::sqlite().await, Self::postgres().await]
    }

    pub async fn sqlite() -> TestDb {
        let n = DB_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("m365sync-db-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("test.db").display());
        let key = m365sync_store::SecretKey::generate();
        let key_base64 = key.to_base64();
        let store = m365sync_store::Store::open(&url, key).await.unwrap();
        TestDb {
            url,
            store,
            key_base64,
            cleanup: None,
            dir: Some(dir),
        }
    }

    pub async fn postgres() -> TestDb {
        use sqlx::Connection;
        let admin = std::env::var("M365SYNC_TEST_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let n = DB_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("m365sync_t{}_{n}", std::process::id());
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .expect("PostgreSQL must be running for the store tests (see README)");
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
        let key = m365sync_store::SecretKey::generate();
        let key_base64 = key.to_base64();
        let store = m365sync_store::Store::open(&url, key).await.unwrap();
        TestDb {
            url,
            store,
            key_base64,
            cleanup: Some((admin, name)),
            dir: None,
        }
    }

    /// Closes the store and removes the database.
    pub async fn drop_db(self) {
        use sqlx::Connection;
        self.store.close().await;
        if let Some((admin, name)) = self.cleanup {
            let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        if let Some(dir) = self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
