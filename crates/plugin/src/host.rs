//! The host imports (`interface host` of the contract) and the per-call Store data.
//!
//! A Store is made for one batch of one tenant and holds only that tenant's view
//! ([`TenantView`]), so scoping is structural: there is no argument a plugin could pass to reach
//! another tenant's or org's data. Every list crossing in either direction is bounded by
//! [`Limits::max_host_list`]; asking for more traps the call (a plugin bug, reported as such).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::bindings::host::Host;
use super::bindings::types::{Contact, Entity, Level, LogLevel, Rule};
use super::limits::{Limits, StoreLimiter};
use super::sandbox::WasiState;

/// What a plugin may read about the tenant it runs for. Implementations answer for exactly one
/// (org, tenant); the database layer builds one per batch.
pub trait TenantView: Send + Sync {
    /// The rules of the org, the tenant and, when `user` is given, that user.
    fn rules(&self, user: Option<&str>) -> Vec<Rule>;
    /// The org's internal domains, lower-case.
    fn internal_domains(&self) -> Vec<String>;
    /// Contacts carrying any of `emails` (lower-case), at most `limit`.
    fn contacts_by_email(&self, emails: &[String], limit: usize) -> Vec<Contact>;
    /// The CRM entity (household, company) with `id`, if the tenant's org has it.
    fn entity(&self, id: &str) -> Option<Entity>;
    /// Whether `email` (lower-case) is a linked mailbox of one of the tenant's sync users.
    fn is_sync_user(&self, email: &str) -> bool;
}

/// A rule with the user it belongs to (user-level rules only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuleDef {
    /// The rule as a plugin sees it (flattened: a case file writes its fields beside `user`).
    #[serde(flatten)]
    pub rule: Rule,
    /// The CRM user of a user-level rule.
    #[serde(default)]
    pub user: Option<String>,
}

/// Everything one tenant's plugins may see, in memory; [`TenantData::indexed`] makes it a
/// [`TenantView`]. The case files use it directly (`[context]`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantData {
    /// The name of the org the data belongs to. No host import answers it: it says whose
    /// data this is.
    pub org: String,
    /// The name of the tenant the data belongs to, likewise never handed to a plugin.
    pub tenant: String,
    /// The org's internal domains; `host.internal-domains` answers them trimmed, lower-case
    /// and without a leading `@`.
    pub internal_domains: Vec<String>,
    /// Rules of every level; `host.rules` answers the org's and the tenant's, plus a user's
    /// own when asked for that user.
    pub rules: Vec<RuleDef>,
    /// The CRM contacts `host.contacts-by-email` finds by email, alternate email or contact
    /// point.
    pub contacts: Vec<Contact>,
    /// The CRM entities `host.entity-by-id` answers from.
    pub entities: Vec<Entity>,
    /// Addresses of the tenant's sync users' linked mailboxes.
    pub sync_users: Vec<String>,
}

/// [`TenantData`] with its lookup indexes: the in-memory [`TenantView`].
#[derive(Clone, Debug)]
pub struct IndexedTenant {
    data: TenantData,
    by_email: HashMap<String, Vec<usize>>,
    sync_users: HashSet<String>,
}

impl TenantData {
    /// Builds the lookup indexes.
    pub fn indexed(self) -> IndexedTenant {
        let mut by_email: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, c) in self.contacts.iter().enumerate() {
            let all = c
                .email
                .iter()
                .chain(c.alternate_email.iter())
                .chain(c.contact_points.iter());
            for e in all {
                let list = by_email.entry(e.trim().to_ascii_lowercase()).or_default();
                if !list.contains(&i) {
                    list.push(i);
                }
            }
        }
        let sync_users = self
            .sync_users
            .iter()
            .map(|s| s.trim().to_ascii_lowercase())
            .collect();
        IndexedTenant {
            data: self,
            by_email,
            sync_users,
        }
    }
}

impl TenantView for IndexedTenant {
    fn rules(&self, user: Option<&str>) -> Vec<Rule> {
        self.data
            .rules
            .iter()
            .filter(|r| match r.rule.level {
                Level::Org | Level::Tenant => true,
                Level::User => user.is_some() && r.user.as_deref() == user,
            })
            .map(|r| r.rule.clone())
            .collect()
    }

    fn internal_domains(&self) -> Vec<String> {
        self.data
            .internal_domains
            .iter()
            .map(|d| d.trim().trim_start_matches('@').to_ascii_lowercase())
            .collect()
    }

    fn contacts_by_email(&self, emails: &[String], limit: usize) -> Vec<Contact> {
        let mut picked = Vec::new();
        let mut seen = HashSet::new();
        for e in emails {
            for &i in self.by_email.get(e.as_str()).into_iter().flatten() {
                if picked.len() >= limit {
                    return picked;
                }
                if seen.insert(i) {
                    picked.push(self.data.contacts[i].clone());
                }
            }
        }
        picked
    }

    fn entity(&self, id: &str) -> Option<Entity> {
        self.data.entities.iter().find(|e| e.id == id).cloned()
    }

    fn is_sync_user(&self, email: &str) -> bool {
        self.sync_users.contains(email)
    }
}

/// One log line a plugin wrote (through `host.log` or stdout/stderr).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LogLine {
    /// The level the plugin gave; stdout lines are `Info`, stderr lines `Warn`.
    pub level: LogLevel,
    /// The line; through `host.log`, cut to its first 4 KiB.
    pub message: String,
}

/// The bounded log of one Store.
#[derive(Debug, Default)]
pub struct LogBuffer {
    /// The lines kept, in the order they were written.
    pub lines: Vec<LogLine>,
    /// Bytes of message text kept so far.
    pub bytes: usize,
    /// Lines refused because keeping them would have passed `cap`.
    pub dropped: usize,
    /// The most message bytes kept ([`Limits::max_log_bytes`]).
    pub cap: usize,
}

impl LogBuffer {
    /// Keeps `message` at `level`, unless that would take the kept text past `cap`; then the
    /// line is only counted in `dropped`.
    pub fn push(&mut self, level: LogLevel, message: &str) {
        if self.bytes + message.len() > self.cap {
            self.dropped += 1;
            return;
        }
        self.bytes += message.len();
        self.lines.push(LogLine {
            level,
            message: message.to_string(),
        });
    }
}

/// The data of one Store: one batch of one tenant.
pub struct HostState {
    pub(crate) tenant: Arc<dyn TenantView>,
    pub(crate) config: Arc<BTreeMap<String, String>>,
    pub(crate) max_host_list: usize,
    pub(crate) limiter: StoreLimiter,
    pub(crate) log: LogBuffer,
    pub(crate) wasi: WasiState,
}

impl HostState {
    /// The data of a Store for one call for `tenant`: its view and the plugin's configuration,
    /// with the memory limiter, the log bound and the WASI output buffers that `limits` sets.
    pub fn new(
        tenant: Arc<dyn TenantView>,
        config: Arc<BTreeMap<String, String>>,
        limits: &Limits,
    ) -> Self {
        HostState {
            tenant,
            config,
            max_host_list: limits.max_host_list,
            limiter: StoreLimiter::new(limits),
            log: LogBuffer {
                cap: limits.max_log_bytes,
                ..LogBuffer::default()
            },
            wasi: WasiState::new(limits.max_log_bytes),
        }
    }

    fn check_list(&self, what: &str, len: usize) -> wasmtime::Result<()> {
        if len > self.max_host_list {
            wasmtime::bail!(
                "host.{what} was asked for {len} items; the limit is {}",
                self.max_host_list
            );
        }
        Ok(())
    }
}

fn lower(emails: Vec<String>) -> Vec<String> {
    emails
        .into_iter()
        .map(|e| e.trim().to_ascii_lowercase())
        .collect()
}

impl Host for HostState {
    fn rules(&mut self, user: Option<String>) -> wasmtime::Result<Vec<Rule>> {
        let mut rules = self.tenant.rules(user.as_deref());
        rules.truncate(self.max_host_list);
        Ok(rules)
    }

    fn internal_domains(&mut self) -> wasmtime::Result<Vec<String>> {
        let mut domains = self.tenant.internal_domains();
        domains.truncate(self.max_host_list);
        Ok(domains)
    }

    fn contacts_by_email(&mut self, emails: Vec<String>) -> wasmtime::Result<Vec<Contact>> {
        self.check_list("contacts-by-email", emails.len())?;
        Ok(self
            .tenant
            .contacts_by_email(&lower(emails), self.max_host_list))
    }

    fn entity_by_id(&mut self, id: String) -> wasmtime::Result<Option<Entity>> {
        Ok(self.tenant.entity(&id))
    }

    fn sync_users(&mut self, emails: Vec<String>) -> wasmtime::Result<Vec<bool>> {
        self.check_list("sync-users", emails.len())?;
        Ok(lower(emails)
            .iter()
            .map(|e| self.tenant.is_sync_user(e))
            .collect())
    }

    fn config(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.config.get(&key).cloned())
    }

    fn log(&mut self, level: LogLevel, message: String) -> wasmtime::Result<()> {
        let mut end = message.len().min(4096);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        self.log.push(level, &message[..end]);
        Ok(())
    }
}
