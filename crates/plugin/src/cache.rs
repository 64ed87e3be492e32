//! Compiled artifacts on disk, so a restart does not recompile.
//!
//! Compiling a component with Cranelift takes tens to hundreds of milliseconds; loading a
//! compiled artifact takes well under one. An artifact is stored as
//! `<cache dir>/<sha256 of the component>-<wasmtime version>-<engine hash>.cwasm`: the content
//! digest names the plugin exactly (the registry keys blobs the same way), and the wasmtime
//! version plus the engine's compatibility hash (target, tunables, enabled features) make an
//! artifact of another build or configuration miss instead of being misread. Writes go through
//! a temporary file and a rename, so a crash never leaves a half-written artifact under the
//! final name.
//!
//! Deserializing runs native code produced by this process's compiler; the cache directory must
//! be writable only by the service (it is created with mode 0700). A file that is not a
//! wasmtime component artifact, or that wasmtime rejects, is recompiled and overwritten.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Engine, Precompiled};

use super::PluginError;

/// Lower-case hex SHA-256 of a component's bytes: its identity everywhere in m365sync.
pub fn digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where the artifact of `digest` lives for this engine.
pub fn artifact_path(dir: &Path, engine: &Engine, digest: &str) -> PathBuf {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    dir.join(format!(
        "{digest}-{}-{:016x}.cwasm",
        wasmtime_version(),
        hasher.finish()
    ))
}

/// The wasmtime version compiled in (pinned in the workspace Cargo.toml).
pub fn wasmtime_version() -> &'static str {
    "48.0.8"
}

/// How a component was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Compiled now (no cache, or a miss).
    Compiled,
    /// Loaded from the artifact cache.
    Cached,
}

/// Compiles `bytes`, or loads its artifact from `dir` when present; stores what it compiled.
pub fn load(
    engine: &Engine,
    dir: Option<&Path>,
    digest: &str,
    bytes: &[u8],
) -> Result<(Component, Source), PluginError> {
    let Some(dir) = dir else {
        return compile(engine, bytes).map(|c| (c, Source::Compiled));
    };
    let path = artifact_path(dir, engine, digest);
    if let Ok(Some(Precompiled::Component)) = Engine::detect_precompiled_file(&path) {
        // Read, not `deserialize_file`: that maps the file, and a file truncated or rewritten
        // in place while mapped (by an operator, a disk tool) would kill the process with
        // SIGBUS. A copy costs well under a millisecond for a plugin-sized artifact.
        match std::fs::read(&path) {
            // SAFETY: the bytes are a wasmtime component artifact (checked above) from the
            // service's private cache directory, written by `store` below from this engine's
            // own compiler; wasmtime verifies the version and configuration header and refuses
            // a mismatch.
            #[allow(unsafe_code)]
            Ok(artifact) => match unsafe { Component::deserialize(engine, &artifact) } {
                Ok(component) => return Ok((component, Source::Cached)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "stale plugin artifact; recompiling")
                }
            },
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "unreadable plugin artifact; recompiling")
            }
        }
    }
    let component = compile(engine, bytes)?;
    store(dir, &path, &component)?;
    Ok((component, Source::Compiled))
}

fn compile(engine: &Engine, bytes: &[u8]) -> Result<Component, PluginError> {
    Component::new(engine, bytes).map_err(|e| PluginError::Compile(format!("{e:#}")))
}

fn store(dir: &Path, path: &Path, component: &Component) -> Result<(), PluginError> {
    let fail = |message: String| PluginError::Cache {
        path: dir.display().to_string(),
        message,
    };
    create_private_dir(dir).map_err(|e| fail(format!("cannot create it: {e}")))?;
    let bytes = component
        .serialize()
        .map_err(|e| fail(format!("cannot serialize: {e}")))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, &bytes).map_err(|e| fail(format!("cannot write: {e}")))?;
    std::fs::rename(&tmp, path).map_err(|e| fail(format!("cannot rename: {e}")))
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}
