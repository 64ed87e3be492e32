//! `m365sync rules ...` (exclusion rules at org, tenant and user level, E6) and
//! `m365sync activate` (E13).

use std::path::Path;

use clap::{Subcommand, ValueEnum};
use m365sync::admin::activate::{activate, ActivateError};
use m365sync::admin::rules::rule_scope;
use m365sync_store::rules::{Effect, Rule, RuleScope, RuleSpec, Target};
use m365sync_store::Store;
use serde::Serialize;

use super::admin::{open, open_with_http};

/// What a rule does.
#[derive(Clone, Copy, ValueEnum)]
pub enum EffectArg {
    /// Emails the rule matches are not synced (unless an include at the same or a more specific
    /// level matches them).
    Exclude,
    /// An exception: emails the rule matches are synced despite excludes at the same or a broader
    /// level.
    Include,
}

/// What a rule looks at.
#[derive(Clone, Copy, ValueEnum)]
pub enum TargetArg {
    /// Any address of the email (sender or recipient).
    #[value(name = "any_address", alias = "any-address")]
    AnyAddress,
    /// The sender's address.
    Sender,
    /// A recipient's address.
    Recipient,
    /// The subject line (the pattern is text it contains).
    Subject,
}

/// `m365sync rules ...`
#[derive(Subcommand)]
pub enum RulesCommand {
    /// Add an exclusion (or include) rule at org level, or tenant level with --tenant, or a
    /// user's personal level with --tenant and --user. The most specific level wins. Rules act
    /// on syncs after they are created, not retroactively.
    Add {
        /// The org (the firm), as declared with `m365sync apply` or `tenant add`; the rule is
        /// org-wide unless --tenant is given.
        #[arg(long)]
        org: String,
        /// Make the rule for this tenant only (the tenant's name within the org).
        #[arg(long)]
        tenant: Option<String>,
        /// The CRM user's email (personal rule).
        #[arg(long, requires = "tenant")]
        user: Option<String>,
        /// What the rule does with the emails it matches.
        #[arg(long, value_enum)]
        effect: EffectArg,
        /// What the pattern is compared with.
        #[arg(long, value_enum)]
        target: TargetArg,
        /// An address, a wildcard such as `*@salesforce.com`, or text a subject contains.
        #[arg(long)]
        pattern: String,
    },
    /// List an org's rules at every level (narrow with --tenant and --user).
    List {
        /// The org (the firm), as declared with `m365sync apply` or `tenant add`.
        #[arg(long)]
        org: String,
        /// Only the org's rules and this tenant's (and its users').
        #[arg(long)]
        tenant: Option<String>,
        /// Only this CRM user's personal rules besides the org's and tenant's (their email; needs
        /// --tenant).
        #[arg(long, requires = "tenant")]
        user: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove a rule by the id `rules list` shows.
    Remove {
        /// The rule's id (`rules list --org ORG` shows them).
        id: i64,
    },
}

/// A rule with where it applies, for listings.
#[derive(Serialize)]
struct Listed {
    id: i64,
    level: &'static str,
    tenant: Option<String>,
    user: Option<String>,
    #[serde(flatten)]
    spec: RuleSpec,
}

/// Runs `m365sync rules ...`.
pub async fn run(config: Option<&Path>, cmd: RulesCommand) -> anyhow::Result<()> {
    let store = open(config).await?;
    match cmd {
        RulesCommand::Add {
            org,
            tenant,
            user,
            effect,
            target,
            pattern,
        } => {
            let scope = rule_scope(&store, &org, tenant.as_deref(), user.as_deref()).await?;
            let spec = RuleSpec {
                effect: match effect {
                    EffectArg::Exclude => Effect::Exclude,
                    EffectArg::Include => Effect::Include,
                },
                target: match target {
                    TargetArg::AnyAddress => Target::AnyAddress,
                    TargetArg::Sender => Target::Sender,
                    TargetArg::Recipient => Target::Recipient,
                    TargetArg::Subject => Target::Subject,
                },
                pattern,
            };
            let id = store.add_rule(scope, &spec).await?;
            println!("added rule {id}; it acts on syncs from now on");
        }
        RulesCommand::List {
            org,
            tenant,
            user,
            json,
        } => {
            let rules = list(&store, &org, tenant.as_deref(), user.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rules)?);
            } else {
                println!(
                    "{:<6} {:<7} {:<16} {:<28} {:<8} {:<12} PATTERN",
                    "ID", "LEVEL", "TENANT", "USER", "EFFECT", "TARGET"
                );
                for r in rules {
                    println!(
                        "{:<6} {:<7} {:<16} {:<28} {:<8} {:<12} {}",
                        r.id,
                        r.level,
                        r.tenant.as_deref().unwrap_or("-"),
                        r.user.as_deref().unwrap_or("-"),
                        text(r.spec.effect),
                        text(r.spec.target),
                        r.spec.pattern
                    );
                }
            }
        }
        RulesCommand::Remove { id } => {
            if !store.remove_rule(id).await? {
                anyhow::bail!("no rule {id}; `m365sync rules list --org ORG` shows the ids");
            }
            println!("removed rule {id}");
        }
    }
    Ok(())
}

fn text<T: Serialize>(v: T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

async fn list(
    store: &Store,
    org: &str,
    tenant: Option<&str>,
    user: Option<&str>,
) -> anyhow::Result<Vec<Listed>> {
    let org_id = store.org_id(org).await?;
    let listed = |r: Rule, level, tenant: Option<&str>, user: Option<&str>| Listed {
        id: r.id,
        level,
        tenant: tenant.map(str::to_string),
        user: user.map(str::to_string),
        spec: r.spec,
    };
    let mut out: Vec<Listed> = store
        .rules_at(RuleScope::Org { org_id })
        .await?
        .into_iter()
        .map(|r| listed(r, "org", None, None))
        .collect();
    for t in store.tenants(Some(org)).await? {
        if tenant.is_some_and(|n| n != t.name) {
            continue;
        }
        let tenant_id = t.id;
        for r in store
            .rules_at(RuleScope::Tenant { org_id, tenant_id })
            .await?
        {
            out.push(listed(r, "tenant", Some(&t.name), None));
        }
        for (user_id, email) in store.users(tenant_id).await? {
            if user.is_some_and(|u| !u.eq_ignore_ascii_case(&email)) {
                continue;
            }
            let scope = RuleScope::User {
                org_id,
                tenant_id,
                user_id,
            };
            for r in store.rules_at(scope).await? {
                out.push(listed(r, "user", Some(&t.name), Some(&email)));
            }
        }
    }
    if let Some(t) = tenant {
        store.tenant(org, t).await?;
    }
    Ok(out)
}

/// Runs `m365sync activate`.
pub async fn activate_tenant(
    config: Option<&Path>,
    org: &str,
    tenant: &str,
    force: bool,
    json: bool,
) -> anyhow::Result<()> {
    let (store, http) = open_with_http(config).await?;
    let t = store.tenant(org, tenant).await?;
    let done = match activate(&store, &t, http, force).await {
        Ok(done) => done,
        Err(ActivateError::Connectivity { report, .. }) if json => {
            println!("{}", serde_json::to_string_pretty(&report)?);
            anyhow::bail!("tenant {org}/{tenant} failed its connectivity test; not activated");
        }
        Err(e) => return Err(e.into()),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&done)?);
        return Ok(());
    }
    if !done.internal_domains_set.is_empty() {
        println!(
            "internal domains set from the tenant's verified domains: {}",
            done.internal_domains_set.join(", ")
        );
    }
    for w in &done.warnings {
        println!("warning: {w}");
    }
    let day = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_default()
    };
    if done.newly_activated {
        println!(
            "activated tenant {}: the initial sync of {} mailbox(es) is due now, reaching back to {}, then every {} minutes; {} exclusion rule(s) at org and tenant level",
            done.tenant,
            done.mailboxes,
            day(done.commencement_ms),
            done.cadence_minutes,
            done.rules
        );
    } else {
        println!(
            "tenant {} was already activated on {}; nothing changed",
            done.tenant,
            day(done.activated_ms)
        );
    }
    Ok(())
}
