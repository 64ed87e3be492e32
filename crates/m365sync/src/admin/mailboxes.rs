//! Switching one mailbox's sync on or off, as `m365sync mailbox enable/disable` and the
//! console's tenant page (`POST /api/tenants/{org}/{t}/mailboxes/{address}/enable|disable`)
//! both do it.

use m365sync_store::mailboxes::Mailbox;
use m365sync_store::tenants::Tenant;
use m365sync_store::{Store, StoreError};

/// Enables or disables the mailbox `address` of `tenant` and answers it as it is now. Enabling
/// also clears its failure state (a fresh start for an admin who fixed the cause); disabling
/// keeps its stored mail. A mailbox the tenant does not have is `NotFound` naming both and
/// where to list them.
pub async fn set_mailbox_enabled(
    store: &Store,
    tenant: &Tenant,
    address: &str,
    enabled: bool,
) -> Result<Mailbox, StoreError> {
    let missing = || {
        StoreError::NotFound(format!(
            "tenant {}/{} has no mailbox {address}; `m365sync mailbox list` (or GET /api/tenants/{}/{}/mailboxes) shows them",
            tenant.org, tenant.name, tenant.org, tenant.name
        ))
    };
    let m = store
        .mailbox_by_address(tenant.id, address)
        .await?
        .ok_or_else(missing)?;
    store.set_mailbox_enabled(m.id, enabled).await?;
    store
        .mailbox_by_address(tenant.id, &m.address)
        .await?
        .ok_or_else(missing)
}
