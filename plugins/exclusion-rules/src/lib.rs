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

pub mod rules;

use bindings::exports::m365sync::plugin::exclusion_plugin::Guest;
use bindings::m365sync::plugin::host;
use bindings::m365sync::plugin::types::{
    ConfigOption, Decision, Descriptor, Email, Event, Fields, PluginKind, Verdict,
};
use rules::{Compiled, Outcome, RecordView};

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

    fn for_user(&mut self, user: &Option<String>) -> &Compiled {
        let at = match self.sets.iter().position(|(u, _)| u == user) {
            Some(i) => i,
            None => {
                let rules = host::rules(user.as_deref());
                self.sets.push((user.clone(), Compiled::new(&rules)));
                self.sets.len() - 1
            }
        };
        &self.sets[at].1
    }

    fn decide(&mut self, user: &Option<String>, view: &RecordView<'_>) -> Verdict {
        let internal = self.internal_only && view.all_internal(&self.internal);
        match self.for_user(user).decide(view) {
            Outcome::NoRule if internal => Outcome::InternalOnly.verdict(),
            other => other.verdict(),
        }
    }
}

impl Outcome<'_> {
    fn verdict(self) -> Verdict {
        match self {
            Outcome::Rule(rule, level) => {
                let (decision, word) = match rule.effect {
                    rules::Effect::Include => (Decision::Keep, "include"),
                    rules::Effect::Exclude => (Decision::Drop, "exclude"),
                };
                Verdict {
                    decision,
                    rule: Some(rule.id.clone()),
                    reason: format!("{level} {word} rule {} matched", rule.id),
                }
            }
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
        batch
            .iter()
            .map(|e| {
                let view = RecordView::new(
                    e.subject.as_deref().unwrap_or_default(),
                    e.addresses
                        .iter()
                        .flatten()
                        .map(|a| (rules::role_of(a.role), &*a.email)),
                );
                Ok(cache.decide(&e.user, &view))
            })
            .collect()
    }

    fn exclude_events(batch: Vec<Event>) -> Vec<Result<Verdict, String>> {
        let mut cache = RuleCache::new();
        batch
            .iter()
            .map(|e| {
                let organizer = e.organizer.iter().map(|o| (rules::Role::Sender, &*o.email));
                let attendees = e
                    .attendees
                    .iter()
                    .flatten()
                    .map(|a| (rules::Role::Recipient, &*a.email));
                let view = RecordView::new(
                    e.subject.as_deref().unwrap_or_default(),
                    organizer.chain(attendees),
                );
                Ok(cache.decide(&e.user, &view))
            })
            .collect()
    }
}

bindings::export!(Plugin with_types_in bindings);
