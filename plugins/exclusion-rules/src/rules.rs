//! Rule matching, compiled once per batch and user.

use std::fmt;

pub use crate::bindings::m365sync::plugin::types::{AddressRole, Effect, Level, Rule, RuleTarget};

/// The two sides a rule can look at: who sent, who received.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Sender,
    Recipient,
    /// Reply-to: counts for `any-address` only.
    Other,
}

pub fn role_of(role: AddressRole) -> Role {
    match role {
        AddressRole::From | AddressRole::Sender => Role::Sender,
        AddressRole::To | AddressRole::Cc | AddressRole::Bcc => Role::Recipient,
        AddressRole::ReplyTo => Role::Other,
    }
}

/// What the rules look at in a record: lower-cased addresses with their side, and the subject.
pub struct RecordView<'a> {
    subject: String,
    addresses: Vec<(Role, std::borrow::Cow<'a, str>)>,
}

impl<'a> RecordView<'a> {
    pub fn new(subject: &str, addresses: impl Iterator<Item = (Role, &'a str)>) -> Self {
        RecordView {
            subject: subject.to_lowercase(),
            addresses: addresses
                .map(|(r, a)| {
                    let a = a.trim();
                    let a = if a.bytes().any(|b| b.is_ascii_uppercase()) {
                        a.to_ascii_lowercase().into()
                    } else {
                        a.into()
                    };
                    (r, a)
                })
                .collect(),
        }
    }

    /// E7: at least one address, and every one in `domains`.
    pub fn all_internal(&self, domains: &[String]) -> bool {
        !self.addresses.is_empty()
            && self.addresses.iter().all(|(_, a)| {
                let domain = a.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
                domains.iter().any(|d| d == domain)
            })
    }
}

/// A rule's pattern, prepared for matching.
enum Pattern {
    /// Glob over the whole address (`*` matches any run of characters).
    Address(Vec<String>),
    /// A bare domain (`salesforce.com` or `@salesforce.com`): the domain or a subdomain of it.
    Domain(String),
    /// Subject substring (lower-cased).
    Contains(String),
}

struct CompiledRule {
    rule: Rule,
    pattern: Pattern,
}

/// The rules of one user with their patterns prepared, ordered by level, most specific first.
pub struct Compiled {
    rules: Vec<CompiledRule>,
}

/// Which rule decided, if any.
pub enum Outcome<'r> {
    Rule(&'r Rule, LevelName),
    InternalOnly,
    NoRule,
}

/// A level's name for messages.
pub struct LevelName(Level);

impl fmt::Display for LevelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Level::Org => "org",
            Level::Tenant => "tenant",
            Level::User => "user",
        })
    }
}

fn rank(level: Level) -> u8 {
    match level {
        Level::User => 0,
        Level::Tenant => 1,
        Level::Org => 2,
    }
}

fn compile(rule: &Rule) -> Pattern {
    let p = rule.pattern.trim().to_lowercase();
    match rule.target {
        RuleTarget::Subject => Pattern::Contains(p),
        _ if !p.contains('@') => Pattern::Domain(p),
        _ if p.starts_with('@') && !p.contains('*') => Pattern::Domain(p[1..].to_string()),
        _ => Pattern::Address(p.split('*').map(str::to_string).collect()),
    }
}

/// `*`-glob: `parts` are the pattern split at `*`.
fn glob(parts: &[String], text: &str) -> bool {
    match parts {
        [] => text.is_empty(),
        [only] => only == text,
        [first, middle @ .., last] => {
            if text.len() < first.len() + last.len()
                || !text.starts_with(first.as_str())
                || !text.ends_with(last.as_str())
            {
                return false;
            }
            let mut rest = &text[first.len()..text.len() - last.len()];
            for part in middle {
                match rest.find(part.as_str()) {
                    Some(i) => rest = &rest[i + part.len()..],
                    None => return false,
                }
            }
            true
        }
    }
}

impl CompiledRule {
    fn matches(&self, view: &RecordView<'_>) -> bool {
        let wanted = |role: Role| match self.rule.target {
            RuleTarget::AnyAddress => true,
            RuleTarget::Sender => role == Role::Sender,
            RuleTarget::Recipient => role == Role::Recipient,
            RuleTarget::Subject => false,
        };
        match &self.pattern {
            Pattern::Contains(text) => !text.is_empty() && view.subject.contains(text.as_str()),
            Pattern::Domain(domain) => view.addresses.iter().any(|(r, a)| {
                wanted(*r)
                    && a.rsplit_once('@').is_some_and(|(_, d)| {
                        d == domain
                            || (d.ends_with(domain.as_str())
                                && d.as_bytes()[d.len() - domain.len() - 1] == b'.')
                    })
            }),
            Pattern::Address(parts) => view
                .addresses
                .iter()
                .any(|(r, a)| wanted(*r) && glob(parts, a)),
        }
    }
}

impl Compiled {
    pub fn new(rules: &[Rule]) -> Self {
        let mut rules: Vec<CompiledRule> = rules
            .iter()
            .map(|r| CompiledRule {
                pattern: compile(r),
                rule: r.clone(),
            })
            .collect();
        rules.sort_by_key(|r| rank(r.rule.level));
        Compiled { rules }
    }

    /// The deciding rule: the most specific level with a match decides; within it, include wins.
    pub fn decide(&self, view: &RecordView<'_>) -> Outcome<'_> {
        let mut decided: Option<&Rule> = None;
        for compiled in &self.rules {
            let rule = &compiled.rule;
            if let Some(d) = decided {
                if rank(rule.level) > rank(d.level) {
                    break;
                }
                if d.effect == Effect::Include {
                    continue;
                }
            }
            if compiled.matches(view) {
                decided = Some(rule);
            }
        }
        match decided {
            Some(rule) => Outcome::Rule(rule, LevelName(rule.level)),
            None => Outcome::NoRule,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(p: &str) -> Vec<String> {
        p.split('*').map(str::to_string).collect()
    }

    #[test]
    fn globs() {
        assert!(glob(&parts("*@salesforce.com"), "x@salesforce.com"));
        assert!(!glob(&parts("*@salesforce.com"), "x@salesforce.com.evil"));
        assert!(glob(&parts("news*@*"), "newsletter@a.com"));
        assert!(glob(&parts("a@b.com"), "a@b.com"));
        assert!(!glob(&parts("a*a"), "a"));
    }
}
