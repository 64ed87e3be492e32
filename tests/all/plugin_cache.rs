//! The artifact cache: a second engine (a restart) loads the compiled artifact instead of
//! compiling, and a damaged artifact is recompiled rather than trusted.

use m365sync_plugin::builtin::builtin;
use m365sync_plugin::cache::Source;
use m365sync_plugin::{EngineConfig, Kind, Plugin, PluginEngine};

#[test]
fn a_restart_loads_from_the_cache_and_a_damaged_artifact_is_recompiled() {
    let dir = std::env::temp_dir().join(format!("m365sync-plugin-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = EngineConfig {
        cache_dir: Some(dir.clone()),
        max_instances: 4,
        ..EngineConfig::default()
    };
    let wasm = builtin(Kind::Mapping).wasm;

    let first = PluginEngine::new(config.clone()).unwrap();
    let p = Plugin::load(&first, Kind::Mapping, wasm).unwrap();
    assert_eq!(p.source(), Source::Compiled);
    let artifacts: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(artifacts.len(), 1);
    let name = artifacts[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    assert!(
        name.starts_with(p.digest()) && name.contains("-48.0.8-"),
        "{name}"
    );

    let restarted = PluginEngine::new(config.clone()).unwrap();
    let p = Plugin::load(&restarted, Kind::Mapping, wasm).unwrap();
    assert_eq!(p.source(), Source::Cached);
    assert_eq!(p.descriptor().name, "field-mapping");

    std::fs::write(&artifacts[0], b"not an artifact").unwrap();
    let p = Plugin::load(&restarted, Kind::Mapping, wasm).unwrap();
    assert_eq!(p.source(), Source::Compiled);
    let p = Plugin::load(&restarted, Kind::Mapping, wasm).unwrap();
    assert_eq!(p.source(), Source::Cached);
    std::fs::remove_dir_all(&dir).ok();
}
