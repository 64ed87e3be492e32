//! What sync work needs that outlives a run, shared by the service's workers, the one-off runs
//! of the CLI and the matching job. A leaf of the pipeline: the stages and a tenant's context
//! both take it, so it lives apart from either.

use std::sync::Arc;
use std::time::Duration;

use m365sync_graph::RequestObserver;
use m365sync_plugin::engine::PluginEngine;
use m365sync_store::Store;

/// What sync work needs that outlives a run: the database, the plugin engine, HTTP, and who is
/// told how long its steps took.
#[derive(Clone)]
pub struct SyncEnv {
    /// The database.
    pub store: Store,
    /// The one plugin engine and linker, shared by every tenant's plugins.
    pub engine: PluginEngine,
    /// The HTTP client every tenant's Graph client and token cache is built on.
    pub http: reqwest::Client,
    /// Told of each Graph request, page commit and plugin call: the service's metrics; nobody
    /// ([`Unobserved`]) for the CLI's one-off runs and the benchmarks.
    pub observer: Arc<dyn SyncObserver>,
}

impl SyncEnv {
    /// An environment whose timings nobody observes (see [`SyncEnv::observer`]).
    pub fn new(store: Store, engine: PluginEngine, http: reqwest::Client) -> SyncEnv {
        SyncEnv {
            store,
            engine,
            http,
            observer: Arc::new(Unobserved),
        }
    }
}

/// Told how long the pipeline's steps took, as they end: the service's metrics implement it
/// (histograms in seconds). A Graph request observer too, so one object sees the whole path.
pub trait SyncObserver: RequestObserver {
    /// A page of `kind` (`mail` or `calendar`) was committed to the store, in `elapsed`.
    fn page_committed(&self, kind: &'static str, elapsed: Duration);
    /// One batch call of the plugin stamped `name` `version` in `slot` (`exclusion`,
    /// `mapping`) over `records` records ended, in `elapsed`.
    fn plugin_called(
        &self,
        slot: &'static str,
        name: &str,
        version: &str,
        records: usize,
        elapsed: Duration,
    );
    /// A shadow plugin (`name` `version` beside the version in force in `slot`) was compared
    /// on one page's records: `[agreed, disagreed, failed]`.
    fn shadow_compared(&self, slot: &'static str, name: &str, version: &str, counts: [u64; 3]);
}

/// The observer of a [`SyncEnv`] nobody watches.
pub struct Unobserved;

impl RequestObserver for Unobserved {
    fn request_ended(&self, _: &str, _: Option<u16>, _: Duration) {}
}

impl SyncObserver for Unobserved {
    fn page_committed(&self, _: &'static str, _: Duration) {}
    fn plugin_called(&self, _: &'static str, _: &str, _: &str, _: usize, _: Duration) {}
    fn shadow_compared(&self, _: &'static str, _: &str, _: &str, _: [u64; 3]) {}
}
