//! The admin API's tokens below the service's own admin token (E12): one per org admin, one
//! per CRM user. Only a SHA-256 of each token is stored; the token itself is returned once,
//! when it is made, and never logged.

use base64::Engine;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{now_ms, Store, StoreError};

/// Who a token speaks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum TokenRole {
    /// Everything of one org.
    OrgAdmin {
        /// The org's id.
        org_id: i64,
        /// The org's name.
        org: String,
    },
    /// One user's review list and personal exclusion rules.
    User {
        /// The user's org.
        org_id: i64,
        /// The org's name.
        org: String,
        /// The user's tenant.
        tenant_id: i64,
        /// The tenant's name.
        tenant: String,
        /// The user's id.
        user_id: i64,
        /// The user's address.
        email: String,
    },
}

/// A token as listed (never the token itself).
#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    /// The token's id (what revoking names).
    pub id: i64,
    /// What the admin called it.
    pub label: String,
    /// The user's address for a user token, none for an org admin token.
    pub user: Option<String>,
    /// When it was made, epoch ms.
    pub created_ms: i64,
    /// When it was revoked, epoch ms; `None` while valid.
    pub revoked_ms: Option<i64>,
}

fn digest(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Store {
    /// Makes a token for the org's admin (`user_id` none) or for one of its users; returns its
    /// id and the token, which is not kept and cannot be shown again.
    pub async fn create_api_token(
        &self,
        org_id: i64,
        user_id: Option<i64>,
        label: &str,
    ) -> Result<(i64, String), StoreError> {
        if let Some(user) = user_id {
            let found = sqlx::query(
                "SELECT u.id FROM users u JOIN tenants t ON t.id = u.tenant_id WHERE u.id = $1 AND t.org_id = $2",
            )
            .bind(user)
            .bind(org_id)
            .fetch_all(self.pool())
            .await?;
            if found.is_empty() {
                return Err(StoreError::NotFound(format!("no user {user} in this org")));
            }
        }
        let token = format!(
            "m365s_{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
        );
        let row = sqlx::query(
            "INSERT INTO api_tokens (token_sha256, org_id, user_id, label, created_ms) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(digest(&token))
        .bind(org_id)
        .bind(user_id)
        .bind(label)
        .bind(now_ms())
        .fetch_all(self.pool())
        .await?;
        let id: i64 = row
            .first()
            .ok_or_else(|| StoreError::Invalid("the token was not stored".into()))?
            .try_get("id")?;
        Ok((id, token))
    }

    /// Who `token` speaks for, if it is a live token.
    pub async fn token_role(&self, token: &str) -> Result<Option<TokenRole>, StoreError> {
        let row = sqlx::query(
            "SELECT k.org_id, o.name AS org, k.user_id, u.email, u.tenant_id, t.name AS tenant
             FROM api_tokens k JOIN orgs o ON o.id = k.org_id
                 LEFT JOIN users u ON u.id = k.user_id LEFT JOIN tenants t ON t.id = u.tenant_id
             WHERE k.token_sha256 = $1 AND k.revoked_ms IS NULL",
        )
        .bind(digest(token))
        .fetch_optional(self.pool())
        .await?;
        let Some(r) = row else { return Ok(None) };
        let org_id: i64 = r.try_get("org_id")?;
        let org: String = r.try_get("org")?;
        Ok(Some(match r.try_get::<Option<i64>, _>("user_id")? {
            None => TokenRole::OrgAdmin { org_id, org },
            Some(user_id) => TokenRole::User {
                org_id,
                org,
                tenant_id: r.try_get("tenant_id")?,
                tenant: r.try_get("tenant")?,
                user_id,
                email: r.try_get("email")?,
            },
        }))
    }

    /// The org's tokens, newest first.
    pub async fn api_tokens(&self, org_id: i64) -> Result<Vec<TokenInfo>, StoreError> {
        let rows = sqlx::query(
            "SELECT k.id, k.label, u.email, k.created_ms, k.revoked_ms FROM api_tokens k
             LEFT JOIN users u ON u.id = k.user_id WHERE k.org_id = $1 ORDER BY k.id DESC",
        )
        .bind(org_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TokenInfo {
                    id: r.try_get("id")?,
                    label: r.try_get("label")?,
                    user: r.try_get("email")?,
                    created_ms: r.try_get("created_ms")?,
                    revoked_ms: r.try_get("revoked_ms")?,
                })
            })
            .collect()
    }

    /// Revokes one of the org's tokens; NotFound for another org's.
    pub async fn revoke_api_token(&self, org_id: i64, id: i64) -> Result<(), StoreError> {
        let n = sqlx::query(
            "UPDATE api_tokens SET revoked_ms = $1 WHERE id = $2 AND org_id = $3 AND revoked_ms IS NULL",
        )
        .bind(now_ms())
        .bind(id)
        .bind(org_id)
        .execute(self.pool())
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound(format!(
                "no live token {id} in this org; `m365sync token list` shows them"
            )));
        }
        Ok(())
    }
}
