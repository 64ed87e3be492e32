//! Where an exclusion rule applies (E6), from the names an admin gives: the org, a tenant of
//! it, or one of its users. `m365sync rules` and the console's org, tenant and user rules
//! (`/api/orgs/{org}/rules`, `/api/orgs/{org}/tenants/{t}/rules`) resolve their level here.

use m365sync_store::rules::RuleScope;
use m365sync_store::{Store, StoreError};

/// The scope named by `org`, `tenant` and `user` (a user needs its tenant). A name that does
/// not exist is `NotFound` in the store's words, or naming the tenant for a user.
pub async fn rule_scope(
    store: &Store,
    org: &str,
    tenant: Option<&str>,
    user: Option<&str>,
) -> Result<RuleScope, StoreError> {
    let org_id = store.org_id(org).await?;
    let Some(tenant) = tenant else {
        if user.is_some() {
            return Err(StoreError::Invalid(
                "a user's rule names the user's tenant too".into(),
            ));
        }
        return Ok(RuleScope::Org { org_id });
    };
    let t = store.tenant(org, tenant).await?;
    let Some(user) = user else {
        return Ok(RuleScope::Tenant {
            org_id,
            tenant_id: t.id,
        });
    };
    let user_id = store.user_id(t.id, user).await?.ok_or_else(|| {
        StoreError::NotFound(format!(
            "tenant {org}/{tenant} has no user {user}; `m365sync user list` shows them"
        ))
    })?;
    Ok(RuleScope::User {
        org_id,
        tenant_id: t.id,
        user_id,
    })
}
