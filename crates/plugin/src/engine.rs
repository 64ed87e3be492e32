//! The one wasmtime [`Engine`] of a process, its [`Linker`] and its epoch ticker.
//!
//! One engine serves every tenant's plugins: compiled code is shared, and instances come from
//! one pooling allocator whose slots are reused (a fresh instance per batch costs microseconds).
//! A single ticker thread advances the engine's epoch every `epoch_tick`; each call sets its
//! deadline in ticks, so a plugin that never returns is interrupted at the next tick after its
//! timeout. The thread holds only a weak reference and ends when the engine is dropped.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::bindings::host;
use super::bindings::lean::host as lean_host;
use super::host::HostState;
use super::sandbox;
use super::{Kind, Plugin, PluginError};

/// Engine-wide settings: the pooling allocator's size and the epoch tick.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// How often the ticker advances the epoch; call timeouts are rounded up to it.
    #[serde(with = "millis")]
    pub epoch_tick: Duration,
    /// Instances alive at once (batches in flight across all tenants).
    pub max_instances: u32,
    /// The ceiling of any instance's linear memory (a tenant's limit can only be lower).
    pub max_memory_bytes: usize,
    /// Where compiled artifacts are kept; none keeps them in memory only.
    pub cache_dir: Option<PathBuf>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            epoch_tick: Duration::from_millis(5),
            max_instances: 64,
            max_memory_bytes: 256 << 20,
            cache_dir: None,
        }
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// The engine, the linker every plugin is instantiated through, and the settings they came from.
/// Cheap to clone.
#[derive(Clone)]
pub struct PluginEngine {
    pub(crate) engine: Engine,
    pub(crate) linker: Arc<Linker<HostState>>,
    pub(crate) config: Arc<EngineConfig>,
    /// Plugins already loaded, by slot and digest: every tenant run asks for its plugins, and
    /// a loaded plugin (compiled code, `InstancePre`) serves any number of tenants.
    loaded: Arc<std::sync::Mutex<LoadedPlugins>>,
}

/// Loaded plugins by (slot, digest).
type LoadedPlugins = std::collections::HashMap<(&'static str, String), Arc<Plugin>>;

impl PluginEngine {
    /// Builds the engine and starts its ticker thread.
    pub fn new(config: EngineConfig) -> Result<PluginEngine, PluginError> {
        let mut pool = PoolingAllocationConfig::default();
        // A Rust component has a few core instances, one memory, a few tables. A Python one
        // (componentize-py: CPython, its libc and the app as dynamically linked modules) has 38
        // core instances: the pool allows 64 per component and counts are cheap (no memory is
        // reserved per core instance), so every slot can hold a Python plugin.
        pool.total_component_instances(config.max_instances)
            .total_core_instances(config.max_instances * 64)
            .total_memories(config.max_instances * 2)
            .total_tables(config.max_instances * 8)
            .total_stacks(config.max_instances)
            .max_memories_per_component(4)
            .max_tables_per_component(16)
            .max_core_instances_per_component(64)
            .max_memory_size(config.max_memory_bytes);
        let mut wasm = Config::new();
        wasm.wasm_component_model(true)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .cranelift_opt_level(wasmtime::OptLevel::Speed);
        let engine = Engine::new(&wasm).map_err(|e| PluginError::Engine(e.to_string()))?;

        let mut linker = Linker::<HostState>::new(&engine);
        // Both contract minors' host interfaces (`host@0.1.0` and `host@0.2.0`): one linker
        // serves 0.1 and 0.2 plugins side by side.
        lean_host::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(|e| PluginError::Engine(e.to_string()))?;
        host::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(|e| PluginError::Engine(e.to_string()))?;
        sandbox::add_wasi_to_linker(&mut linker).map_err(|e| PluginError::Engine(e.to_string()))?;

        let weak = engine.weak();
        let tick = config.epoch_tick;
        std::thread::Builder::new()
            .name("plugin-epoch".into())
            .spawn(move || loop {
                std::thread::sleep(tick);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => return,
                }
            })
            .map_err(|e| PluginError::Engine(format!("cannot start the epoch ticker: {e}")))?;

        Ok(PluginEngine {
            engine,
            linker: Arc::new(linker),
            config: Arc::new(config),
            loaded: Arc::default(),
        })
    }

    /// The plugin of `bytes` for `kind`, loaded once per process and shared. Loading compiles
    /// (or reads the artifact cache): CPU work for a blocking thread, not an async one.
    pub fn load_shared(&self, kind: Kind, bytes: &[u8]) -> Result<Arc<Plugin>, PluginError> {
        let key = (kind.world(), super::cache::digest(bytes));
        if let Some(p) = self.loaded.lock().expect("plugin memo lock").get(&key) {
            return Ok(Arc::clone(p));
        }
        let plugin = Arc::new(Plugin::load(self, kind, bytes)?);
        self.loaded
            .lock()
            .expect("plugin memo lock")
            .insert(key, Arc::clone(&plugin));
        Ok(plugin)
    }

    /// Epoch ticks that cover `timeout` (at least one).
    pub(crate) fn ticks(&self, timeout: Duration) -> u64 {
        let tick = self.config.epoch_tick.as_nanos().max(1);
        (timeout.as_nanos().div_ceil(tick) as u64).max(1)
    }

    /// The wasmtime engine (for tools that inspect components).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}
