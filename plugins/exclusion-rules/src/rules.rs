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

/// A subject as the subject rules compare it: case-insensitively, without a lower-cased copy
/// when it is ASCII (nearly always), lower-cased once when it is not.
pub enum Subject<'a> {
    /// ASCII: compared with ASCII case folding, which is `to_lowercase` for ASCII text.
    Ascii(&'a str),
    /// Anything else, lower-cased (Unicode) once.
    Lowered(String),
}

impl<'a> Subject<'a> {
    pub fn new(subject: &'a str) -> Self {
        if subject.is_ascii() {
            Subject::Ascii(subject)
        } else {
            Subject::Lowered(subject.to_lowercase())
        }
    }

    /// Whether the subject contains `text` (lower-case, not empty), ignoring case.
    fn contains(&self, text: &str) -> bool {
        match self {
            Subject::Lowered(s) => s.contains(text),
            Subject::Ascii(s) => {
                let (hay, needle) = (s.as_bytes(), text.as_bytes());
                needle.len() <= hay.len()
                    && hay
                        .windows(needle.len())
                        .any(|w| w.eq_ignore_ascii_case(needle))
            }
        }
    }
}

/// An address as the rules compare it: trimmed, lower-case (the host sends lower-case
/// addresses, so this is a copy only for a host that did not).
pub fn address(a: &str) -> std::borrow::Cow<'_, str> {
    let a = a.trim();
    if a.bytes().any(|b| b.is_ascii_uppercase()) {
        a.to_ascii_lowercase().into()
    } else {
        a.into()
    }
}

/// What the rules look at in a record: its addresses with their side, and the subject.
pub struct RecordView<'v, 'a> {
    pub subject: Subject<'a>,
    pub addresses: &'v [(Role, std::borrow::Cow<'a, str>)],
}

impl RecordView<'_, '_> {
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
    /// The verdict's reason when this rule decides, made once.
    reason: String,
}

/// The rules of one user with their patterns prepared, ordered by level, most specific first.
pub struct Compiled {
    rules: Vec<CompiledRule>,
}

/// Which rule decided, if any: the rule and its verdict's reason.
pub enum Outcome<'r> {
    Rule(&'r Rule, &'r str),
    InternalOnly,
    NoRule,
}

/// A level's name for messages.
struct LevelName(Level);

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
    fn matches(&self, view: &RecordView<'_, '_>) -> bool {
        let wanted = |role: Role| match self.rule.target {
            RuleTarget::AnyAddress => true,
            RuleTarget::Sender => role == Role::Sender,
            RuleTarget::Recipient => role == Role::Recipient,
            RuleTarget::Subject => false,
        };
        match &self.pattern {
            Pattern::Contains(text) => !text.is_empty() && view.subject.contains(text),
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
            .map(|r| {
                let word = match r.effect {
                    Effect::Include => "include",
                    Effect::Exclude => "exclude",
                };
                CompiledRule {
                    pattern: compile(r),
                    reason: format!("{} {word} rule {} matched", LevelName(r.level), r.id),
                    rule: r.clone(),
                }
            })
            .collect();
        rules.sort_by_key(|r| rank(r.rule.level));
        Compiled { rules }
    }

    /// The deciding rule: the most specific level with a match decides; within it, include wins.
    pub fn decide(&self, view: &RecordView<'_, '_>) -> Outcome<'_> {
        let mut decided: Option<&CompiledRule> = None;
        for compiled in &self.rules {
            let rule = &compiled.rule;
            if let Some(d) = decided {
                if rank(rule.level) > rank(d.rule.level) {
                    break;
                }
                if d.rule.effect == Effect::Include {
                    continue;
                }
            }
            if compiled.matches(view) {
                decided = Some(compiled);
            }
        }
        match decided {
            Some(c) => Outcome::Rule(&c.rule, &c.reason),
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
    fn subjects_compare_ignoring_case() {
        assert!(Subject::new("Monthly NEWSLETTER").contains("newsletter"));
        assert!(Subject::new("newsletter").contains("newsletter"));
        assert!(!Subject::new("news").contains("newsletter"));
        assert!(Subject::new("Été NEWSLETTER").contains("newsletter"));
        assert!(Subject::new("ÉTÉ").contains("été"));
        assert!(!Subject::new("ETE").contains("été"));
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
