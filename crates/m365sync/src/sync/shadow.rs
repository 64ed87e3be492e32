//! Shadow runs in the pipeline (issue 18): a candidate plugin decides each page beside the
//! version in force, and what it would have done is compared with what was done. It decides
//! nothing: its answers never reach the fold, the page commit or the CRM.
//!
//! Its cost is bounded: it runs after the live call on the same blocking thread, under the
//! tenant's call limits with the isolation budget cut to one call timeout (a shadow that traps
//! or loops costs a page at most about two call timeouts per chunk of records), and a panic
//! in the host while calling it is caught. Each of its failures is counted as the shadow's and
//! listed in the diff; the live verdicts are computed before it starts and are not touched.
//!
//! Only disagreements and the shadow's failures become rows; agreements are counted. A record
//! the live plugins failed on is not compared (it is retried and compared when decided).
//! Exclusion shadows compare the decision (keep or drop); the rule each named is shown but a
//! different rule for the same decision is an agreement. Mapping shadows compare the mapped
//! record of each record the live exclusion kept, as JSON.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use m365sync_plugin::bindings::types::{Decision, Verdict};
use m365sync_plugin::call::{CallContext, RecordError};
use m365sync_plugin::{Kind, Plugin};
use m365sync_store::shadows::{ShadowDiff, ShadowPage};
use m365sync_store::Store;

use super::env::SyncObserver;
use super::stages::{StageRecord, Verdicted};

/// A candidate running beside a tenant's plugin in one slot.
pub struct ShadowRun {
    /// `Exclusion` or `Mapping`.
    pub slot: Kind,
    /// The candidate.
    pub plugin: Arc<Plugin>,
    /// The org the shadow was set in.
    pub org_id: i64,
    /// The level it was set at: the tenant's id, or 0 for the org's.
    pub tenant_scope: i64,
    /// The tenant whose records it sees.
    pub tenant_id: i64,
}

/// What the live exclusion answered for one record: (kept, the rule it named), or `None`
/// when it failed on it.
pub type LiveVerdict = Option<(bool, Option<String>)>;

/// The live verdict as its answer reads.
pub fn live_verdict(v: &Result<Verdict, RecordError>) -> LiveVerdict {
    v.as_ref()
        .ok()
        .map(|v| (v.decision == Decision::Keep, v.rule.clone()))
}

fn verdict_word(keep: bool) -> &'static str {
    if keep {
        "keep"
    } else {
        "drop"
    }
}

/// The limits a shadow is called under: the tenant's, with the isolation budget (re-running a
/// failed batch's records one by one) no longer than one call timeout.
fn shadow_context(ctx: &CallContext) -> CallContext {
    let mut ctx = ctx.clone();
    ctx.limits.isolation_budget = ctx.limits.isolation_budget.min(ctx.limits.call_timeout);
    ctx
}

/// Runs each shadow over the page's records and compares it with the live answers. Called on
/// the blocking thread after the live stages; a shadow that panics the host yields a page
/// where every compared record failed. Each page's counts also go to `observer` (the
/// service's `m365sync_plugin_shadow_records_total`), so a firm watching a candidate sees its
/// disagreements as they happen, not only in `plugin shadow diff`.
pub fn run_shadows<R: StageRecord>(
    shadows: &[ShadowRun],
    ctx: &CallContext,
    records: &[R],
    live: &[LiveVerdict],
    verdicts: &[Verdicted<R::Mapped>],
    observer: &dyn SyncObserver,
) -> Vec<ShadowPage> {
    let ctx = shadow_context(ctx);
    shadows
        .iter()
        .map(|shadow| {
            let mut page = ShadowPage {
                org_id: shadow.org_id,
                tenant_scope: shadow.tenant_scope,
                slot: shadow.slot.world().to_string(),
                digest: shadow.plugin.digest().to_string(),
                tenant_id: shadow.tenant_id,
                agreed: 0,
                diffs: Vec::new(),
            };
            let compared = std::panic::catch_unwind(AssertUnwindSafe(|| match shadow.slot {
                Kind::Mapping => compare_mapping(&shadow.plugin, &ctx, records, verdicts),
                _ => compare_exclusion(&shadow.plugin, &ctx, records, live),
            }));
            match compared {
                Ok((agreed, diffs)) => {
                    page.agreed = agreed;
                    page.diffs = diffs;
                }
                Err(_) => {
                    tracing::warn!(
                        slot = %shadow.slot,
                        plugin = %shadow.plugin.descriptor().name,
                        "calling the shadow plugin panicked; its page counts as failed"
                    );
                    page.diffs = records
                        .iter()
                        .zip(live)
                        .filter(|(_, l)| l.is_some())
                        .map(|(r, l)| failure(r, l, "calling the shadow plugin panicked"))
                        .collect();
                }
            }
            let failed = page.diffs.iter().filter(|d| d.outcome == "failed").count() as u64;
            let disagreed = page.diffs.len() as u64 - failed;
            let descriptor = shadow.plugin.descriptor();
            observer.shadow_compared(
                shadow.slot.world(),
                &descriptor.name,
                &descriptor.version,
                [page.agreed.max(0) as u64, disagreed, failed],
            );
            page
        })
        .collect()
}

fn failure<R: StageRecord>(record: &R, live: &LiveVerdict, error: &str) -> ShadowDiff {
    let (keep, rule) = live.clone().unwrap_or((true, None));
    ShadowDiff {
        record_kind: R::KIND.into(),
        graph_id: record.graph_id().into(),
        subject: record.subject().into(),
        outcome: "failed".into(),
        live: verdict_word(keep).into(),
        live_rule: rule.unwrap_or_default(),
        shadow: error.into(),
        shadow_rule: String::new(),
    }
}

fn compare_exclusion<R: StageRecord>(
    plugin: &Plugin,
    ctx: &CallContext,
    records: &[R],
    live: &[LiveVerdict],
) -> (i64, Vec<ShadowDiff>) {
    let answers = R::exclude(plugin, ctx, records);
    let mut agreed = 0;
    let mut diffs = Vec::new();
    for ((record, live), answer) in records.iter().zip(live).zip(answers) {
        let Some((keep, rule)) = live else {
            continue;
        };
        match answer {
            Err(e) => diffs.push(failure(record, live, &e.to_string())),
            Ok(v) => {
                let shadow_keeps = v.decision == Decision::Keep;
                if shadow_keeps == *keep {
                    agreed += 1;
                } else {
                    diffs.push(ShadowDiff {
                        record_kind: R::KIND.into(),
                        graph_id: record.graph_id().into(),
                        subject: record.subject().into(),
                        outcome: "disagreed".into(),
                        live: verdict_word(*keep).into(),
                        live_rule: rule.clone().unwrap_or_default(),
                        shadow: verdict_word(shadow_keeps).into(),
                        shadow_rule: v.rule.unwrap_or_default(),
                    });
                }
            }
        }
    }
    (agreed, diffs)
}

fn compare_mapping<R: StageRecord>(
    plugin: &Plugin,
    ctx: &CallContext,
    records: &[R],
    verdicts: &[Verdicted<R::Mapped>],
) -> (i64, Vec<ShadowDiff>) {
    let mut batch = Vec::new();
    let mut live = Vec::new();
    for (record, verdict) in records.iter().zip(verdicts) {
        if let Verdicted::Kept(m) = verdict {
            batch.push(record.clone());
            live.push(serde_json::to_string(m).unwrap_or_default());
        }
    }
    if batch.is_empty() {
        return (0, Vec::new());
    }
    let answers = R::map(plugin, ctx, &batch);
    let mut agreed = 0;
    let mut diffs = Vec::new();
    for ((record, live), answer) in batch.iter().zip(live).zip(answers) {
        let (outcome, shadow) = match answer {
            Err(e) => ("failed", e.to_string()),
            Ok(m) => {
                let shadow = serde_json::to_string(&m).unwrap_or_default();
                if shadow == live {
                    agreed += 1;
                    continue;
                }
                ("disagreed", shadow)
            }
        };
        diffs.push(ShadowDiff {
            record_kind: R::KIND.into(),
            graph_id: record.graph_id().into(),
            subject: record.subject().into(),
            outcome: outcome.into(),
            live,
            live_rule: String::new(),
            shadow,
            shadow_rule: String::new(),
        });
    }
    (agreed, diffs)
}

/// Writes a page's shadow comparisons after the page committed: best effort, apart from the
/// page's transaction, so the shadow can never fail or hold up the commit (see
/// docs/architecture.md, "Shadow runs"). A failed write is logged and that page's comparison
/// is missing from the counts.
pub async fn record(store: &Store, pages: Vec<ShadowPage>) {
    for page in pages {
        if let Err(e) = store.record_shadow_page(&page).await {
            tracing::warn!(
                slot = %page.slot,
                error = %e,
                "a page's shadow comparison could not be recorded; it is missing from the diff's counts"
            );
        }
    }
}
