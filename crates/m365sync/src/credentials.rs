//! A tenant's stored credentials turned into its token cache: client secrets for app-only
//! tenants, client secrets plus the sealed refresh token for delegated ones. The one place
//! that reads secrets out of the store for Graph, so a sync run, `tenant test` and the service
//! authenticate the same way.

use std::sync::Arc;

use m365sync_graph::auth::{AppCredentials, DelegatedCredentials, RotationSink, TokenCache};
use m365sync_store::tenants::{AuthMode, SecretKind, Tenant};
use m365sync_store::{Store, StoreError};

/// The label a delegated tenant's refresh token is stored under: one current token, replaced
/// on every rotation.
pub const REFRESH_TOKEN_LABEL: &str = "delegated";

/// The app part of a tenant's credentials, client secrets newest first.
pub async fn app_credentials(store: &Store, tenant: &Tenant) -> Result<AppCredentials, StoreError> {
    let secrets = store
        .secrets(tenant.id, SecretKind::ClientSecret)
        .await?
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    Ok(AppCredentials {
        tenant_name: format!("{}/{}", tenant.org, tenant.name),
        authority: tenant.authority.clone(),
        ms_tenant: tenant.ms_tenant.clone(),
        client_id: tenant.client_id.clone(),
        secrets,
    })
}

/// Stores a delegated tenant's refresh token, sealed, replacing the previous one.
pub async fn store_refresh_token(
    store: &Store,
    tenant_id: i64,
    token: &str,
) -> Result<(), StoreError> {
    store
        .put_secret(
            tenant_id,
            SecretKind::RefreshToken,
            REFRESH_TOKEN_LABEL,
            token,
        )
        .await
}

/// The token cache for `tenant`: client credentials for an app-only tenant; for a delegated
/// one, the refresh-token grant with every rotated refresh token written back to the store
/// (sealed) before it is used. A delegated tenant nobody has authorized yet gets a cache whose
/// every request fails with `AuthError::NotAuthorized`, so callers report it like any other
/// credential problem.
pub async fn token_cache_for(
    store: &Store,
    tenant: &Tenant,
    http: reqwest::Client,
) -> Result<Arc<TokenCache>, StoreError> {
    let app = app_credentials(store, tenant).await?;
    if tenant.auth_mode == AuthMode::App {
        return Ok(Arc::new(TokenCache::new(app, http)));
    }
    let stored = store.secrets(tenant.id, SecretKind::RefreshToken).await?;
    let Some((_, refresh_token)) = stored.into_iter().next() else {
        return Ok(Arc::new(TokenCache::unauthorized(app.tenant_name, http)));
    };
    let (sink_store, tenant_id) = (store.clone(), tenant.id);
    let on_rotate: RotationSink = Arc::new(move |token: String| {
        let store = sink_store.clone();
        Box::pin(async move {
            store_refresh_token(&store, tenant_id, &token)
                .await
                .map_err(|e| e.to_string())
        })
    });
    Ok(Arc::new(TokenCache::delegated(
        DelegatedCredentials {
            app,
            refresh_token,
            on_rotate: Some(on_rotate),
        },
        http,
    )))
}
