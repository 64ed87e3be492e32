//! Administration logic behind the CLI, kept out of it so it is typed and testable: tenant
//! connectivity checks (E11), the Entra "Download users" CSV and its import (E2), directory
//! lookups that tell a mailbox from a group, which plugin is in force where, declaring a
//! tenant or an org, a rule's level and a mailbox's switch. The CLI and the admin API (the console's
//! setup assistant) call the same functions.

pub mod activate;
pub mod connectivity;
pub mod csv;
pub mod directory;
pub mod import;
pub mod install;
pub mod mailboxes;
pub mod orgs;
pub mod plugins;
pub mod rules;
pub mod settings;
pub mod tenants;

use std::sync::Arc;
use std::time::Duration;

use m365sync_graph::{ClientConfig, GraphClient, TokenCache};
use m365sync_store::tenants::Tenant;

/// A Graph client for an interactive admin command: few retries and short backoff, so a broken
/// tenant is reported in seconds, not after the sync's patient retry budget.
pub fn admin_client(
    tenant: &Tenant,
    tokens: Arc<TokenCache>,
    http: reqwest::Client,
) -> GraphClient {
    GraphClient::new(
        http,
        tokens,
        ClientConfig {
            graph_url: tenant.graph_url.clone(),
            max_attempts: 3,
            base_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            ..ClientConfig::default()
        },
    )
}
