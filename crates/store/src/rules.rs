//! Exclusion rules at org, tenant and user level (E6), in the plugin contract's vocabulary.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{now_ms, Store, StoreError};

/// Where a rule applies: the whole org, one tenant, or one user (personal exclusions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RuleScope {
    /// Every tenant and user of the org.
    Org {
        /// The org.
        org_id: i64,
    },
    /// Every user of one tenant.
    Tenant {
        /// The tenant's org.
        org_id: i64,
        /// The tenant.
        tenant_id: i64,
    },
    /// One user's own mail (personal exclusions).
    User {
        /// The user's org.
        org_id: i64,
        /// The user's tenant.
        tenant_id: i64,
        /// The user.
        user_id: i64,
    },
}

impl RuleScope {
    fn ids(self) -> (i64, Option<i64>, Option<i64>) {
        match self {
            RuleScope::Org { org_id } => (org_id, None, None),
            RuleScope::Tenant { org_id, tenant_id } => (org_id, Some(tenant_id), None),
            RuleScope::User {
                org_id,
                tenant_id,
                user_id,
            } => (org_id, Some(tenant_id), Some(user_id)),
        }
    }
}

/// What a rule does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// Records the rule matches are not synced.
    Exclude,
    /// Records the rule matches are synced whatever the exclusions say.
    Include,
}

/// What part of an email a rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Any of the email's addresses.
    AnyAddress,
    /// The sender's address.
    Sender,
    /// A recipient's address.
    Recipient,
    /// The subject's text.
    Subject,
}

/// A rule to store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSpec {
    /// Exclude or include.
    pub effect: Effect,
    /// What part of an email the pattern is compared with.
    pub target: Target,
    /// An address, a wildcard such as `*@salesforce.com`, or text a subject contains.
    pub pattern: String,
}

/// A stored rule.
#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    /// m365sync's id of the rule.
    pub id: i64,
    /// Where it applies.
    pub scope: RuleScope,
    /// What it does.
    pub spec: RuleSpec,
}

fn text<T: Serialize>(v: T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn parse<T: for<'de> Deserialize<'de>>(s: &str) -> Result<T, StoreError> {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .map_err(|e| StoreError::Invalid(format!("stored rule has '{s}': {e}")))
}

impl Store {
    /// Adds a rule; it acts on syncs after now, not retroactively.
    pub async fn add_rule(&self, scope: RuleScope, spec: &RuleSpec) -> Result<i64, StoreError> {
        if spec.pattern.trim().is_empty() {
            return Err(StoreError::Invalid("a rule needs a pattern".into()));
        }
        let (org, tenant, user) = scope.ids();
        Ok(sqlx::query("INSERT INTO rules (org_id, tenant_id, user_id, effect, target, pattern, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id")
            .bind(org)
            .bind(tenant)
            .bind(user)
            .bind(text(spec.effect))
            .bind(text(spec.target))
            .bind(spec.pattern.trim().to_ascii_lowercase())
            .bind(now_ms())
            .fetch_all(self.pool())
            .await?
            .into_iter()
            .next()
            .ok_or(sqlx::Error::RowNotFound)?
            .try_get("id")?)
    }

    /// Removes a rule by id.
    pub async fn remove_rule(&self, id: i64) -> Result<bool, StoreError> {
        Ok(sqlx::query("DELETE FROM rules WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?
            .rows_affected()
            > 0)
    }

    /// Removes a rule only if it is defined exactly at `scope`: a user removing one of their
    /// personal rules cannot reach anyone else's. False when there is no such rule there.
    pub async fn remove_rule_at(&self, scope: RuleScope, id: i64) -> Result<bool, StoreError> {
        let (org, tenant, user) = scope.ids();
        Ok(sqlx::query(
            "DELETE FROM rules WHERE id = $1 AND org_id = $2
               AND (($3 = 0 AND tenant_id IS NULL) OR tenant_id = $3)
               AND (($4 = 0 AND user_id IS NULL) OR user_id = $4)",
        )
        .bind(id)
        .bind(org)
        .bind(tenant.unwrap_or(0))
        .bind(user.unwrap_or(0))
        .execute(self.pool())
        .await?
        .rows_affected()
            > 0)
    }

    /// The rules defined exactly at `scope`.
    pub async fn rules_at(&self, scope: RuleScope) -> Result<Vec<Rule>, StoreError> {
        let (org, tenant, user) = scope.ids();
        let rows = sqlx::query(
            "SELECT id, effect, target, pattern FROM rules WHERE org_id = $1
               AND (($2 = 0 AND tenant_id IS NULL) OR tenant_id = $2)
               AND (($3 = 0 AND user_id IS NULL) OR user_id = $3) ORDER BY id",
        )
        .bind(org)
        .bind(tenant.unwrap_or(0))
        .bind(user.unwrap_or(0))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Rule {
                    id: r.try_get("id")?,
                    scope,
                    spec: RuleSpec {
                        effect: parse(&r.try_get::<String, _>("effect")?)?,
                        target: parse(&r.try_get::<String, _>("target")?)?,
                        pattern: r.try_get("pattern")?,
                    },
                })
            })
            .collect()
    }

    /// Makes the rules at `scope` exactly `specs` (what `apply` declares), keeping the ids of
    /// rules that stay. Returns (added, removed).
    pub async fn replace_rules(
        &self,
        scope: RuleScope,
        specs: &[RuleSpec],
    ) -> Result<(usize, usize), StoreError> {
        let existing = self.rules_at(scope).await?;
        let normal = |s: &RuleSpec| RuleSpec {
            pattern: s.pattern.trim().to_ascii_lowercase(),
            ..s.clone()
        };
        let wanted: Vec<RuleSpec> = specs.iter().map(normal).collect();
        let mut removed = 0;
        for r in &existing {
            if !wanted.contains(&r.spec) {
                self.remove_rule(r.id).await?;
                removed += 1;
            }
        }
        let mut added = 0;
        for w in &wanted {
            if !existing.iter().any(|r| &r.spec == w) {
                self.add_rule(scope, w).await?;
                added += 1;
            }
        }
        Ok((added, removed))
    }
}
