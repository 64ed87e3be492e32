//! Case files: inputs and expected outputs a plugin ships with (`cases.toml`), the runner
//! behind `m365sync plugin test` and the CI check of the default plugins.
//!
//! ```toml
//! kind = "exclusion"                   # exclusion | mapping | matching
//!
//! [context]                            # what the host imports answer (one tenant)
//! internal_domains = ["firm.com"]
//! sync_users = ["alice@firm.com"]
//! [[context.rules]]
//! id = "org-salesforce"
//! level = "Org"                        # Org | Tenant | User (with `user = "..."`)
//! effect = "Exclude"                   # Exclude | Include
//! target = "AnyAddress"                # AnyAddress | Sender | Recipient | Subject
//! pattern = "*@salesforce.com"
//!
//! [config]                             # the plugin's configuration values
//! internal-only = "true"
//!
//! [defaults.email]                     # merged under every case's `email` (also `event`, `record`)
//! mailbox = "alice@firm.com"
//!
//! [[case]]
//! name = "a Salesforce sender is dropped by the org rule"
//! email = { subject = "Renewal", addresses = [{ role = "From", email = "x@salesforce.com", name = "" }] }
//! expect = { decision = "Drop", rule = "org-salesforce" }
//! ```
//!
//! Field names are the WIT names with `_` for `-`; enum cases are the WIT cases in
//! UpperCamelCase (as the generated bindings spell them). A case gives one input (`email`,
//! `event` or `record`, which with `kind` picks the call) and either `expect` (the output; keys
//! left out are not compared; `"<none>"` expects an absent optional value) or `expect_error` (a substring of the record's error). A case may
//! override `config` and `context` for itself.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::bindings::types::{Email, Event, MatchInput};
use super::call::{CallContext, Plugin, RecordError};
use super::host::TenantData;
use super::limits::Limits;
use super::Kind;

/// A parsed case file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    /// The kind of plugin the file is for; running it on another is [`CaseError::Kind`].
    pub kind: Kind,
    /// `[context]`: the tenant data (a [`TenantData`]) the host imports answer from in every
    /// case.
    #[serde(default = "empty_table")]
    pub context: toml::Value,
    /// `[config]`: the plugin's configuration values in every case.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// `[limits]`: the bounds of the calls, when not the defaults.
    #[serde(default)]
    pub limits: Option<Limits>,
    /// `[defaults.email]`, `[defaults.event]`, `[defaults.record]`: merged under every case's
    /// input of that name, so a case gives only the fields it is about.
    #[serde(default)]
    pub defaults: BTreeMap<String, toml::Value>,
    /// Expected `describe()` answer (keys left out are not compared).
    #[serde(default)]
    pub describe: Option<toml::Value>,
    /// The `[[case]]` entries, run in file order.
    #[serde(default, rename = "case")]
    pub cases: Vec<Case>,
}

/// One `[[case]]`: one input record, and the answer or the error it must produce.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Names the case in the report.
    pub name: String,
    /// An email input (exclusion and mapping files).
    #[serde(default)]
    pub email: Option<toml::Value>,
    /// An event input (exclusion and mapping files).
    #[serde(default)]
    pub event: Option<toml::Value>,
    /// A match input (matching files).
    #[serde(default)]
    pub record: Option<toml::Value>,
    /// The expected answer; only the keys given are compared.
    #[serde(default)]
    pub expect: Option<toml::Value>,
    /// A substring the record's error must contain, for a case that must fail.
    #[serde(default)]
    pub expect_error: Option<String>,
    /// This case's configuration values, replacing the file's `[config]` whole.
    #[serde(default)]
    pub config: Option<BTreeMap<String, String>>,
    /// Merged over the file's `[context]`, for this case alone.
    #[serde(default)]
    pub context: Option<toml::Value>,
}

/// A case file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    /// The file is not TOML, or not shaped like a case file (unknown keys are refused, so a
    /// misspelt key is not silently ignored).
    #[error("the case file is not valid TOML for a case file: {0}")]
    Parse(#[from] toml::de::Error),
    /// One case cannot be run: not exactly one input, an input or a context that is not a
    /// valid record, or not exactly one of `expect` and `expect_error`.
    #[error("case {case:?}: {message}")]
    Case {
        /// The case's name.
        case: String,
        /// What is wrong with it.
        message: String,
    },
    /// The file is for another kind of plugin than the one given.
    #[error("the case file is for {file} plugins but the plugin is a {plugin} plugin")]
    Kind {
        /// The kind the file names.
        file: Kind,
        /// The plugin's kind.
        plugin: Kind,
    },
}

/// The outcome of one case that did not pass.
#[derive(Debug)]
pub struct Failure {
    /// The case's name (`describe()` for the check of the descriptor).
    pub case: String,
    /// `path: expected X, got Y` lines.
    pub diffs: Vec<String>,
}

/// What a case file run found.
#[derive(Debug, Default)]
pub struct Report {
    /// Cases that passed, the `describe()` check included.
    pub passed: usize,
    /// Cases that did not, in file order.
    pub failures: Vec<Failure>,
}

impl Report {
    /// True when every case passed.
    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for failure in &self.failures {
            writeln!(f, "FAIL {}", failure.case)?;
            for d in &failure.diffs {
                writeln!(f, "    {d}")?;
            }
        }
        write!(f, "{} passed, {} failed", self.passed, self.failures.len())
    }
}

fn empty_table() -> toml::Value {
    toml::Value::Table(toml::map::Map::new())
}

/// Deep merge: `over` wins; tables merge key by key, everything else is replaced.
fn merge(base: &toml::Value, over: &toml::Value) -> toml::Value {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            let mut out = b.clone();
            for (k, v) in o {
                let merged = match out.get(k) {
                    Some(bv) => merge(bv, v),
                    None => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            toml::Value::Table(out)
        }
        _ => over.clone(),
    }
}

fn to_json(v: &toml::Value) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 200 {
        let mut end = 200;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s
    }
}

/// Compares `expected` against `actual`: tables by the expected keys only, lists element by
/// element and by length, scalars by equality. Appends `path: ...` lines to `diffs`.
pub fn diff(path: &str, expected: &Value, actual: &Value, diffs: &mut Vec<String>) {
    let at = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                match a.get(k) {
                    Some(av) => diff(&at(k), ev, av, diffs),
                    None => diffs.push(format!(
                        "{}: expected {}, but there is no such field",
                        at(k),
                        short(ev)
                    )),
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                diffs.push(format!(
                    "{}: expected {} items, got {}: {}",
                    if path.is_empty() { "(output)" } else { path },
                    e.len(),
                    a.len(),
                    short(actual)
                ));
                return;
            }
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                diff(&format!("{path}[{i}]"), ev, av, diffs);
            }
        }
        // TOML has no null: `"<none>"` expects an absent optional value.
        (Value::String(s), Value::Null) if s == "<none>" => {}
        _ if expected == actual => {}
        _ => diffs.push(format!(
            "{}: expected {}, got {}",
            if path.is_empty() { "(output)" } else { path },
            short(expected),
            short(actual)
        )),
    }
}

fn parse_input<T: serde::de::DeserializeOwned>(
    case: &str,
    what: &str,
    defaults: Option<&toml::Value>,
    value: &toml::Value,
) -> Result<T, CaseError> {
    let merged = match defaults {
        Some(d) => merge(d, value),
        None => value.clone(),
    };
    merged
        .try_into()
        .map_err(|e: toml::de::Error| CaseError::Case {
            case: case.to_string(),
            message: format!("the {what} is not a valid record: {}", e.message()),
        })
}

impl CaseFile {
    /// Parses a case file. The cases' inputs are only checked as records when they run.
    pub fn parse(text: &str) -> Result<CaseFile, CaseError> {
        Ok(toml::from_str(text)?)
    }

    fn context(&self, case: &Case) -> Result<CallContext, CaseError> {
        let ctx_value = match &case.context {
            Some(over) => merge(&self.context, over),
            None => self.context.clone(),
        };
        let tenant: TenantData = match ctx_value {
            toml::Value::Table(t) if t.is_empty() => TenantData::default(),
            v => v.try_into().map_err(|e: toml::de::Error| CaseError::Case {
                case: case.name.clone(),
                message: format!("[context] is not valid: {}", e.message()),
            })?,
        };
        let config = case.config.clone().unwrap_or_else(|| self.config.clone());
        Ok(CallContext {
            tenant: Arc::new(tenant.indexed()),
            config: Arc::new(config),
            limits: self.limits.clone().unwrap_or_default(),
        })
    }

    /// Runs every case against `plugin` and compares.
    pub fn run(&self, plugin: &Plugin) -> Result<Report, CaseError> {
        if plugin.kind() != self.kind {
            return Err(CaseError::Kind {
                file: self.kind,
                plugin: plugin.kind(),
            });
        }
        let mut report = Report::default();
        if let Some(expected) = &self.describe {
            let mut diffs = Vec::new();
            let actual = serde_json::to_value(plugin.descriptor()).unwrap_or(Value::Null);
            diff("", &to_json(expected), &actual, &mut diffs);
            self.record(&mut report, "describe()", diffs);
        }
        for case in &self.cases {
            let ctx = self.context(case)?;
            let inputs = [&case.email, &case.event, &case.record];
            if inputs.iter().filter(|i| i.is_some()).count() != 1 {
                return Err(CaseError::Case {
                    case: case.name.clone(),
                    message: "give exactly one of `email`, `event`, `record`".into(),
                });
            }
            let bad = |message: &str| CaseError::Case {
                case: case.name.clone(),
                message: message.to_string(),
            };
            let d = |k: &str| self.defaults.get(k);
            let result: Result<Value, RecordError> = match (self.kind, inputs) {
                (Kind::Exclusion, [Some(e), None, None]) => {
                    let email: Email = parse_input(&case.name, "email", d("email"), e)?;
                    first(plugin.exclude_emails(&ctx, &[email]).results)
                }
                (Kind::Exclusion, [None, Some(e), None]) => {
                    let event: Event = parse_input(&case.name, "event", d("event"), e)?;
                    first(plugin.exclude_events(&ctx, &[event]).results)
                }
                (Kind::Mapping, [Some(e), None, None]) => {
                    let email: Email = parse_input(&case.name, "email", d("email"), e)?;
                    first(plugin.map_emails(&ctx, &[email]).results)
                }
                (Kind::Mapping, [None, Some(e), None]) => {
                    let event: Event = parse_input(&case.name, "event", d("event"), e)?;
                    first(plugin.map_events(&ctx, &[event]).results)
                }
                (Kind::Matching, [None, None, Some(r)]) => {
                    let input: MatchInput = parse_input(&case.name, "record", d("record"), r)?;
                    first(plugin.match_records(&ctx, &[input]).results)
                }
                (Kind::Matching, _) => return Err(bad("a matching case gives a `record`")),
                _ => {
                    return Err(bad(
                        "an exclusion or mapping case gives an `email` or an `event`",
                    ))
                }
            };
            let mut diffs = Vec::new();
            match (&case.expect, &case.expect_error, result) {
                (Some(expected), None, Ok(actual)) => {
                    diff("", &to_json(expected), &actual, &mut diffs)
                }
                (None, Some(wanted), Err(e)) => {
                    let got = e.to_string();
                    if !got.contains(wanted.as_str()) {
                        diffs.push(format!(
                            "error: expected one containing {wanted:?}, got {got:?}"
                        ));
                    }
                }
                (Some(_), None, Err(e)) => {
                    diffs.push(format!("expected an answer, got the error: {e}"))
                }
                (None, Some(wanted), Ok(actual)) => diffs.push(format!(
                    "expected an error containing {wanted:?}, got the answer {}",
                    short(&actual)
                )),
                _ => return Err(bad("give exactly one of `expect` and `expect_error`")),
            }
            self.record(&mut report, &case.name, diffs);
        }
        Ok(report)
    }

    fn record(&self, report: &mut Report, case: &str, diffs: Vec<String>) {
        if diffs.is_empty() {
            report.passed += 1;
        } else {
            report.failures.push(Failure {
                case: case.to_string(),
                diffs,
            });
        }
    }
}

fn first<T: serde::Serialize>(results: Vec<Result<T, RecordError>>) -> Result<Value, RecordError> {
    let r = results
        .into_iter()
        .next()
        .expect("one result for one record")?;
    Ok(serde_json::to_value(r).unwrap_or(Value::Null))
}
