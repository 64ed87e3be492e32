//! The world on disk, so a sandbox keeps its mailboxes across restarts.
//!
//! A world is saved whole, as JSON (`{"format":1,"world":{...}}`), written to a temporary
//! file beside the target and renamed over it, so a crash never leaves half a file. Loading
//! gives back the same world: the same ids, messages, folder and change logs, sequence and
//! epoch, and the same id salt, from which the token sealer's key is derived. Delta tokens
//! and access tokens issued before a save therefore keep working after a load, and mail
//! delivered before a stop is still there. [`Autosave`] saves a running simulator's world
//! every few seconds when it changed, and once more when it stops.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::config::ProtocolConfig;
use super::model::World;
use super::{Origin, Sim};

/// The version of the file layout; a file of another version is refused by name.
pub const FORMAT: u32 = 1;

/// Why a world could not be saved or loaded. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// The file exists but cannot be read.
    #[error("cannot read the simulator's saved world {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The file is not a saved world (or is damaged).
    #[error("{path} is not a saved simulator world ({detail}); move it away or delete it to start from a freshly generated world")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        detail: String,
    },
    /// The file was written by a simulator with another layout.
    #[error("{path} holds a saved world of format {found}, and this simulator reads format {FORMAT}; delete it to start from a freshly generated world")]
    Format {
        /// The file.
        path: PathBuf,
        /// The format the file declares.
        found: u32,
    },
    /// The file cannot be written.
    #[error("cannot save the simulator's world to {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}

#[derive(Serialize)]
struct SavedRef<'a> {
    format: u32,
    world: &'a World,
}

#[derive(Deserialize)]
struct Saved {
    format: u32,
    world: World,
}

#[derive(Deserialize)]
struct Header {
    format: u32,
}

/// The world as the bytes of a saved file.
pub fn to_bytes(world: &World) -> Vec<u8> {
    serde_json::to_vec(&SavedRef {
        format: FORMAT,
        world,
    })
    .expect("a world serialises")
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, flushed, then renamed.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), PersistError> {
    use std::io::Write;
    let err = |source| PersistError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let mut file = std::fs::File::create(&tmp).map_err(err)?;
    file.write_all(bytes).map_err(err)?;
    file.sync_all().map_err(err)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(err)
}

/// Saves a world to `path` atomically.
pub fn save(world: &World, path: &Path) -> Result<(), PersistError> {
    write_atomically(path, &to_bytes(world))
}

/// Loads the world saved in `path`; `Ok(None)` when there is no such file.
pub fn load(path: &Path) -> Result<Option<World>, PersistError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(PersistError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let parse = |e: serde_json::Error| PersistError::Parse {
        path: path.to_path_buf(),
        detail: e.to_string(),
    };
    let header: Header = serde_json::from_slice(&bytes).map_err(parse)?;
    if header.format != FORMAT {
        return Err(PersistError::Format {
            path: path.to_path_buf(),
            found: header.format,
        });
    }
    let saved: Saved = serde_json::from_slice(&bytes).map_err(parse)?;
    debug_assert_eq!(saved.format, FORMAT);
    Ok(Some(saved.world))
}

/// A simulator over the world saved in `path` when there is one, else over the world
/// `origin` builds. Returns whether the world was loaded. `origin` stays what
/// `POST /_sim/reset` rebuilds.
pub fn open_or_build(
    path: &Path,
    origin: Origin,
    protocol: ProtocolConfig,
) -> Result<(Arc<Sim>, bool), PersistError> {
    Ok(match load(path)? {
        Some(world) => (Sim::with_world(origin, protocol, world), true),
        None => (Sim::new(origin, protocol), false),
    })
}

/// Keeps a running simulator's world saved: every `every` when it changed, and once more on
/// [`Autosave::finish`]. Saving serialises under the world lock (a consistent snapshot) and
/// writes outside it.
pub struct Autosave {
    sim: Arc<Sim>,
    path: PathBuf,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    saved: Arc<std::sync::Mutex<(u64, u64)>>,
}

impl Autosave {
    /// Starts saving `sim`'s world to `path`. The world as it is now counts as saved only
    /// if it was just loaded from `path`; otherwise the first tick writes it.
    pub fn start(sim: Arc<Sim>, path: PathBuf, every: Duration, loaded: bool) -> Autosave {
        let initial = if loaded {
            sim.world_version()
        } else {
            (u64::MAX, u64::MAX)
        };
        let saved = Arc::new(std::sync::Mutex::new(initial));
        let (stop, mut stopped) = watch::channel(false);
        let task = {
            let (sim, path, saved) = (Arc::clone(&sim), path.clone(), Arc::clone(&saved));
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = stopped.changed() => return,
                    }
                    if let Err(e) = save_if_changed(&sim, &path, &saved).await {
                        tracing::warn!(error = %e, "the simulator's world was not saved; retrying");
                    }
                }
            })
        };
        Autosave {
            sim,
            path,
            stop,
            task,
            saved,
        }
    }

    /// Stops the periodic saves and saves the world one last time (if it changed).
    pub async fn finish(self) -> Result<(), PersistError> {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        save_if_changed(&self.sim, &self.path, &self.saved).await
    }
}

async fn save_if_changed(
    sim: &Arc<Sim>,
    path: &Path,
    saved: &Arc<std::sync::Mutex<(u64, u64)>>,
) -> Result<(), PersistError> {
    let (version, bytes) = {
        let world = sim.world();
        let version = (world.seq, world.epoch);
        if *saved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            == version
        {
            return Ok(());
        }
        (version, to_bytes(&world))
    };
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
        .await
        .expect("the writer does not panic")?;
    *saved
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = version;
    Ok(())
}

/// A `&'static str` field of the model (a value from a small fixed vocabulary, such as a
/// message's `importance`). An alias because serde's derive treats a field spelled
/// `&'static str` as borrowed from the input, which a loaded world cannot be.
pub type StaticStr = &'static str;

/// Serde for `&'static str` fields (values from small fixed vocabularies such as
/// `importance`): a loaded value is interned once, so loading costs no leak per message.
pub mod static_str {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the text.
    pub fn serialize<S: Serializer>(v: &&'static str, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v)
    }

    /// Reads text and returns the interned `&'static str` for it.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
        static POOL: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
        let text = String::deserialize(d)?;
        let mut pool = POOL
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(known) = pool.get(text.as_str()) {
            return Ok(known);
        }
        let leaked: &'static str = Box::leak(text.into_boxed_str());
        pool.insert(leaked);
        Ok(leaked)
    }
}

/// Serde for `Arc<str>` (message bodies), without serde's `rc` feature.
pub mod arc_str {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the text.
    pub fn serialize<S: Serializer>(v: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v)
    }

    /// Reads the text.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<str>, D::Error> {
        Ok(Arc::from(String::deserialize(d)?))
    }
}

/// Serde for `Arc<[u8]>` (attachment bytes), as base64.
pub mod arc_bytes {
    use std::sync::Arc;

    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the bytes as base64.
    pub fn serialize<S: Serializer>(v: &Arc<[u8]>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    /// Reads base64 bytes.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<[u8]>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD
            .decode(text)
            .map(Arc::from)
            .map_err(serde::de::Error::custom)
    }
}

/// Serde for a time zone: its name as the client gave it, resolved again on load.
pub mod zone {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::calendar::Zone;

    /// Writes the zone's name.
    pub fn serialize<S: Serializer>(v: &Zone, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.name)
    }

    /// Reads a zone name (Windows or IANA).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Zone, D::Error> {
        let name = String::deserialize(d)?;
        Zone::parse(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown time zone '{name}'")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{generate, ground_truth, GenerateOptions};

    #[test]
    fn a_saved_world_loads_as_the_same_world() {
        let world = generate(&GenerateOptions {
            users: 3,
            messages: 30,
            events: 10,
            busy_users: 1,
            busy_messages: 300,
            ..Default::default()
        })
        .world;
        let dir = std::env::temp_dir().join(format!("m365sync-persist-{}", std::process::id()));
        let path = dir.join("world.json");
        save(&world, &path).unwrap();
        let back = load(&path).unwrap().unwrap();
        assert_eq!(ground_truth(&back), ground_truth(&world));
        assert_eq!(
            (back.seq, back.epoch, back.salt),
            (world.seq, world.epoch, world.salt)
        );
        std::fs::write(&path, b"{\"format\":1,\"world\":{").unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(
            err.contains("world.json") && err.contains("not a saved"),
            "{err}"
        );
        std::fs::write(&path, b"{\"format\":99}").unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("format 99"), "{err}");
        assert!(load(&dir.join("absent.json")).unwrap().is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
