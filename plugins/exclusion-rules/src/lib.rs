//! The default exclusion plugin (E6, E7): keep or drop each email or event.
//!
//! The rules come from the host per user (org, tenant and that user's rules). Among the rules
//! that match a record, those of the most specific level decide: user over tenant over org.
//! Within that level an include beats an exclude (an include is written as an exception), so a
//! user-level include overrides an org exclude and a user-level exclude overrides an org include.
//! When no rule matches and every address is in the org's internal domains, the record is
//! dropped by the `internal-only` rule (E7; configuration `internal-only = "false"` turns it off).

mod bindings {
    wit_bindgen::generate!({ world: "exclusion", path: "../../wit" });
}

#[cfg(target_arch = "wasm32")]
mod bump;
pub mod rules;

/// A bump allocator: each call runs on a fresh instance, so nothing needs freeing (bump.rs).
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: bump::Bump = bump::Bump::new();

use bindings::exports::m365sync::plugin::exclusion_plugin::Guest;
use bindings::m365sync::plugin::host;
use bindings::m365sync::plugin::types::{
    ConfigOption, Decision, Descriptor, Email, Event, Fields, PluginKind, Verdict,
};
use rules::{Compiled, Outcome, RecordView, Role, Subject};

struct Plugin;

/// The rule sets of the users seen in one batch (a page usually has one user).
struct RuleCache {
    sets: Vec<(Option<String>, Compiled)>,
    internal: Vec<String>,
    internal_only: bool,
}

impl RuleCache {
    fn new() -> Self {
        let internal_only = host::config("internal-only").as_deref() != Some("false");
        let internal = if internal_only {
            host::internal_domains()
                .into_iter()
                .map(|d| d.trim_start_matches('@').to_ascii_lowercase())
                .collect()
        } else {
            Vec::new()
        };
        RuleCache {
            sets: Vec::new(),
            internal,
            internal_only,
        }
    }

    /// The index of `user`'s rule set, asked of the host the first time.
    fn for_user(&mut self, user: &Option<String>) -> usize {
        match self.sets.iter().position(|(u, _)| u == user) {
            Some(i) => i,
            None => {
                let rules = host::rules(user.as_deref());
                self.sets.push((user.clone(), Compiled::new(&rules)));
                self.sets.len() - 1
            }
        }
    }

    fn decide(&mut self, user: &Option<String>, view: &RecordView<'_, '_>) -> Verdict {
        let at = self.for_user(user);
        match self.sets[at].1.decide(view) {
            Outcome::NoRule if self.internal_only && view.all_internal(&self.internal) => {
                Outcome::InternalOnly.verdict()
            }
            other => other.verdict(),
        }
    }
}

impl Outcome<'_> {
    fn verdict(self) -> Verdict {
        match self {
            Outcome::Rule(rule, reason) => Verdict {
                decision: match rule.effect {
                    rules::Effect::Include => Decision::Keep,
                    rules::Effect::Exclude => Decision::Drop,
                },
                rule: Some(rule.id.clone()),
                reason: reason.into(),
            },
            Outcome::InternalOnly => Verdict {
                decision: Decision::Drop,
                rule: Some("internal-only".into()),
                reason: "every address is in the internal domains".into(),
            },
            Outcome::NoRule => Verdict {
                decision: Decision::Keep,
                rule: None,
                reason: "no rule matched".into(),
            },
        }
    }
}

impl Guest for Plugin {
    fn describe() -> Descriptor {
        Descriptor {
            name: "exclusion-rules".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: PluginKind::Exclusion,
            config: vec![ConfigOption {
                key: "internal-only".into(),
                description: "drop records whose every address is in the internal domains (E7)"
                    .into(),
                default: Some("true".into()),
            }],
            // What the rules read (contract 0.2): the user whose rules apply, the subject and
            // the addresses; nothing else is handed over.
            fields: Fields::USER | Fields::SUBJECT | Fields::ADDRESSES,
        }
    }

    fn exclude_emails(batch: Vec<Email>) -> Vec<Result<Verdict, String>> {
        let mut cache = RuleCache::new();
        // One buffer for every record's addresses: no allocation per record.
        let mut addresses = Vec::new();
        batch
            .iter()
            .map(|e| {
                addresses.clear();
                addresses.extend(
                    e.addresses
                        .iter()
                        .flatten()
                        .map(|a| (rules::role_of(a.role), rules::address(&a.email))),
                );
                let view = RecordView {
                    subject: Subject::new(e.subject.as_deref().unwrap_or_default()),
                    addresses: &addresses,
                };
                Ok(cache.decide(&e.user, &view))
            })
            .collect()
    }

    fn exclude_events(batch: Vec<Event>) -> Vec<Result<Verdict, String>> {
        let mut cache = RuleCache::new();
        let mut addresses = Vec::new();
        batch
            .iter()
            .map(|e| {
                addresses.clear();
                let organizer = e.organizer.iter().map(|o| (Role::Sender, &*o.email));
                let attendees = e
                    .attendees
                    .iter()
                    .flatten()
                    .map(|a| (Role::Recipient, &*a.email));
                addresses.extend(
                    organizer
                        .chain(attendees)
                        .map(|(r, a)| (r, rules::address(a))),
                );
                let view = RecordView {
                    subject: Subject::new(e.subject.as_deref().unwrap_or_default()),
                    addresses: &addresses,
                };
                Ok(cache.decide(&e.user, &view))
            })
            .collect()
    }
}

bindings::export!(Plugin with_types_in bindings);
