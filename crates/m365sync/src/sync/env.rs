//! What sync work needs that outlives a run, shared by the service's workers, the one-off runs
//! of the CLI and the matching job. A leaf of the pipeline: the stages and a tenant's context
//! both take it, so it lives apart from either.

use m365sync_plugin::engine::PluginEngine;
use m365sync_store::Store;

/// What sync work needs that outlives a run: the database, the plugin engine, HTTP.
#[derive(Clone)]
pub struct SyncEnv {
    /// The database.
    pub store: Store,
    /// The one plugin engine and linker, shared by every tenant's plugins.
    pub engine: PluginEngine,
    /// The HTTP client every tenant's Graph client and token cache is built on.
    pub http: reqwest::Client,
}
