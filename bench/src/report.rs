//! Result files: `SCENARIO.json` (the figures with the command and options that produced
//! them) and `SCENARIO.md` (the table BENCHMARKS.md quotes).

use serde::Serialize;

use super::capture::CaptureResult;
use super::ingest::{IngestRun, Variant};
use super::peer::PeerResult;
use super::scale::ScaleResult;
use super::swap::SwapResult;
use super::throttle::ThrottleResult;
use super::{BenchError, BenchOptions};

/// Writes `NAME.json` and `NAME.md` into the output directory.
pub fn write<T: Serialize>(
    opts: &BenchOptions,
    name: &str,
    figures: &T,
    markdown: &str,
) -> Result<(), BenchError> {
    let json = serde_json::json!({
        "scenario": name,
        "command": opts.command,
        "measured_at": chrono::Utc::now().to_rfc3339(),
        "options": opts,
        "results": figures,
    });
    let write = |file: String, text: String| {
        let path = opts.out.join(&file);
        std::fs::write(&path, text)
            .map_err(|e| BenchError::Setup(format!("{}: {e}", path.display())))
    };
    write(
        format!("{name}.json"),
        serde_json::to_string_pretty(&json).expect("figures serialise"),
    )?;
    write(format!("{name}.md"), markdown.to_string())
}

/// `12,345`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(super) fn header(opts: &BenchOptions, title: &str) -> String {
    format!(
        "### {title}\nCommand: `{}`  \nMeasured {} UTC.\n\n",
        opts.command,
        chrono::Utc::now().format("%Y-%m-%d %H:%M")
    )
}

/// The ingest and floor table, with the plugins' cost over the floor per database.
pub fn ingest_markdown(opts: &BenchOptions, runs: &[IngestRun]) -> String {
    let mut md = header(opts, "Ingest and floor");
    md.push_str(&format!(
        "{} mailboxes x {} messages generated (attachment rate {}), pages of {}.\n\n",
        opts.mailboxes, opts.messages, opts.attachment_rate, opts.page_size
    ));
    md.push_str(
        "| db | variant | messages read | emails stored | seconds | messages/s | CPU s per 1,000 | \
         written KiB per message | peak RSS MiB | in plugin stages | attachments MiB | simulator CPU s | load avg |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in runs {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {:.1} | {} | {:.3} | {:.1} | {:.0} | {:.2} s, {:.1}% of CPU | {:.0} | {:.1} | {:.2} |\n",
            r.db,
            r.variant.name(),
            thousands(r.processed),
            thousands(r.stored_emails.max(0) as u64),
            r.seconds,
            thousands(r.messages_per_second.round() as u64),
            r.cpu_seconds_per_1000,
            r.written_kib_per_message,
            r.peak_rss_mib,
            r.stage_seconds,
            r.stage_cpu_percent,
            r.attachment_mib,
            r.sim_cpu_seconds,
            r.load_average,
        ));
    }
    md.push('\n');
    for db in ["sqlite", "postgres"] {
        let get = |v: Variant| runs.iter().find(|r| r.db == db && r.variant == v);
        if let (Some(i), Some(f)) = (get(Variant::Ingest), get(Variant::Floor)) {
            md.push_str(&format!(
                "- {db}: the plugins cost {:.1}% of wall time over the floor ({} against {} \
                 messages/s) and {:.1}% more CPU per message.\n",
                100.0 * (f.messages_per_second / i.messages_per_second.max(1e-9) - 1.0),
                thousands(i.messages_per_second.round() as u64),
                thousands(f.messages_per_second.round() as u64),
                100.0 * (i.cpu_seconds_per_1000 / f.cpu_seconds_per_1000.max(1e-9) - 1.0),
            ));
        }
    }
    for db in ["sqlite", "postgres"] {
        let get = |v: Variant| runs.iter().find(|r| r.db == db && r.variant == v);
        if let (Some(i), Some(s)) = (get(Variant::Ingest), get(Variant::Shadow)) {
            let [agreed, disagreed, failed] = s.shadow_compared;
            md.push_str(&format!(
                "- {db}: with a shadow exclusion plugin beside the default ones, {:+.1}% wall \
                 time ({} against {} messages/s) and {:+.1}% CPU per message; it compared {} \
                 records ({agreed} agreed, {disagreed} disagreed, {failed} failed).\n",
                100.0 * (i.messages_per_second / s.messages_per_second.max(1e-9) - 1.0),
                thousands(s.messages_per_second.round() as u64),
                thousands(i.messages_per_second.round() as u64),
                100.0 * (s.cpu_seconds_per_1000 / i.cpu_seconds_per_1000.max(1e-9) - 1.0),
                thousands((agreed + disagreed + failed).max(0) as u64),
                agreed = thousands(agreed.max(0) as u64),
                disagreed = thousands(disagreed.max(0) as u64),
                failed = thousands(failed.max(0) as u64),
            ));
        }
    }
    if let Some(i) = runs
        .iter()
        .find(|r| r.db == "sqlite" && r.variant == Variant::Ingest)
    {
        let met = i.messages_per_second >= 20_000.0;
        md.push_str(&format!(
            "- Goal 20,000 messages/s on SQLite through the plugins: **{}** ({}).\n",
            if met { "met" } else { "not met" },
            thousands(i.messages_per_second.round() as u64)
        ));
    }
    md
}

/// The peer beside m365sync.
pub fn peer_markdown(opts: &BenchOptions, r: &PeerResult) -> String {
    let mut md = header(opts, "Peer: Python msgraph-sdk against m365sync");
    md.push_str(&format!(
        "Same simulator, same run; the peer is `bench/peer/peer.py` (msgraph-sdk, Python {}, \
         pages of {}, one SQLite transaction per page, 4 mailboxes at a time, no attachments).\n\n",
        r.peer.python, opts.page_size
    ));
    md.push_str(
        "| client | messages | seconds | messages/s | CPU s per 1,000 | peak RSS MiB | load avg |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for run in [&r.ingest, &r.floor].into_iter().flatten() {
        md.push_str(&format!(
            "| m365sync, {} (sqlite) | {} | {:.1} | {} | {:.3} | {:.0} | {:.2} |\n",
            run.variant.name(),
            thousands(run.processed),
            run.seconds,
            thousands(run.messages_per_second.round() as u64),
            run.cpu_seconds_per_1000,
            run.peak_rss_mib,
            run.load_average
        ));
    }
    let p = &r.peer;
    md.push_str(&format!(
        "| peer (msgraph-sdk) | {} | {:.1} ({:.1} with start-up) | {} | {:.3} | {:.0} | {:.2} |\n\n",
        thousands(p.processed),
        p.seconds,
        p.process_seconds,
        thousands(p.messages_per_second.round() as u64),
        p.cpu_seconds_per_1000,
        p.peak_rss_mib,
        p.load_average
    ));
    if let Some(x) = r.ratio_ingest {
        md.push_str(&format!(
            "- m365sync through its plugins / peer: **{x:.1}x** messages per second (goal: 20x: {}).\n",
            if x >= 20.0 { "met" } else { "not met" }
        ));
    }
    if let Some(x) = r.ratio_floor {
        md.push_str(&format!("- m365sync floor / peer: {x:.1}x.\n"));
    }
    md.push_str("\n![ingest throughput over the backfill](throughput.svg)\n");
    md
}

/// The throttle table.
pub fn throttle_markdown(opts: &BenchOptions, r: &ThrottleResult) -> String {
    let t = &r.options;
    let mut md = header(opts, "Throttle: a scaled-down Outlook budget");
    md.push_str(&format!(
        "{} mailboxes, budget {} requests per {} s per app and mailbox, {} in flight, pages of \
         {}, the service with {} workers and tenant max_concurrency {}; measured over {} whole \
         windows from the first request.\n\n",
        t.mailboxes,
        t.limit,
        t.window_secs,
        t.concurrency,
        t.page_size,
        t.mailboxes,
        t.tenant_concurrency,
        t.windows
    ));
    md.push_str(
        "| permitted | admitted | used | requests | answered 429 | share 429 | (concurrency / budget) | messages moved | service RSS MiB | load avg |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    md.push_str(&format!(
        "| {} | {} | **{:.1}%** | {} | {} | **{:.2}%** | {} / {} | {} | {:.0} | {:.2} |\n\n",
        thousands(r.permitted),
        thousands(r.admitted),
        r.used_percent,
        thousands(r.requests),
        thousands(r.answered_429),
        r.percent_429,
        thousands(r.refused_concurrency),
        thousands(r.refused_budget),
        thousands(r.delta_items),
        r.service.as_ref().map(|s| s.peak_rss_mib).unwrap_or(0.0),
        r.load_average
    ));
    md.push_str(&format!(
        "- Goal at least 95% used: **{}**; under 0.5% answered 429: **{}**.\n",
        if r.used_percent >= 95.0 {
            "met"
        } else {
            "not met"
        },
        if r.percent_429 < 0.5 {
            "met"
        } else {
            "not met"
        }
    ));
    md
}

/// The swap table.
pub fn swap_markdown(opts: &BenchOptions, r: &SwapResult) -> String {
    let o = &r.options;
    let mut md = header(opts, "Swap: the exclusion plugin replaced under load");
    md.push_str(&format!(
        "The service ({} workers) backfills {} mailboxes x {} messages (pages of {}, {} ms added \
         to every Graph answer so the backfill lasts); every {} s a command swaps the exclusion \
         plugin (the builtin with a tag section: same policy, new digest).\n\n",
        o.workers, o.mailboxes, o.messages, o.page_size, o.latency_ms, o.every_secs
    ));
    md.push_str(
        "| command | command took | to the first record decided by the new version | batch p50 / p99 in the 3 s after |\n\
         |---|---|---|---|\n",
    );
    for s in &r.swaps {
        md.push_str(&format!(
            "| `{}` (sha256 {}..) | {} ms | {} | {} / {} ms |\n",
            s.command,
            &s.digest[..s.digest.len().min(12)],
            s.command_ms,
            s.to_first_record_ms
                .map(|v| format!("{v} ms ({} ms after it returned)", v - s.command_ms))
                .unwrap_or_else(|| "never".into()),
            s.batch_p50_ms_after
                .map(|v| v.to_string())
                .unwrap_or("-".into()),
            s.batch_p99_ms_after
                .map(|v| v.to_string())
                .unwrap_or("-".into()),
        ));
    }
    md.push_str(&format!(
        "\n| records in the simulator | decided | processed by the run | lost | decided twice | batches | batch p50 / p99 overall | service peak RSS MiB | load avg |\n\
         |---|---|---|---|---|---|---|---|---|\n\
         | {} | {} | {} | **{}** | **{}** | {} | {} / {} ms | {:.0} | {:.2} |\n",
        thousands(r.truth),
        thousands(r.decided),
        thousands(r.processed),
        r.lost,
        r.decided_twice,
        r.batches,
        r.batch_p50_ms,
        r.batch_p99_ms,
        r.service.peak_rss_mib,
        r.load_average
    ));
    md
}

/// The scale table.
pub fn scale_markdown(opts: &BenchOptions, r: &ScaleResult) -> String {
    let o = &r.options;
    let mut md = header(opts, "Scale: many tenants in one service");
    md.push_str(&format!(
        "{} tenants x {} mailboxes x {} messages on {}, each tenant with its own exclusion \
         plugin version; one `serve` ({} workers) backfills, idles {} s, then {} new message(s) \
         per mailbox and every tenant's run requested at once.\n\n",
        o.tenants, o.mailboxes, o.messages, r.db, o.workers, o.idle_secs, o.new_per_mailbox
    ));
    md.push_str(
        "| mailboxes | backfill s | peak RSS in backfill | idle RSS | incremental pass s | RSS after pass | peak RSS | emails stored | load avg |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    md.push_str(&format!(
        "| {} | {:.1} | {:.0} MiB | **{:.0} MiB** | **{:.2}** | {:.0} MiB | {:.0} MiB | {} | {:.2} |\n\n",
        thousands(r.mailboxes as u64),
        r.backfill_seconds,
        r.backfill_peak_rss_mib,
        r.idle_rss_mib,
        r.pass_seconds,
        r.rss_after_pass_mib,
        r.peak_rss_mib,
        thousands(r.emails_stored.max(0) as u64),
        r.load_average
    ));
    md.push_str(&format!(
        "- Goal at most 200 MB RSS: idle **{}** ({:.0} MB), peak **{}** ({:.0} MB).\n",
        if r.idle_rss_mib * 1.048576 <= 200.0 {
            "met"
        } else {
            "not met"
        },
        r.idle_rss_mib * 1.048576,
        if r.peak_rss_mib * 1.048576 <= 200.0 {
            "met"
        } else {
            "not met"
        },
        r.peak_rss_mib * 1.048576,
    ));
    md
}

/// The capture table.
pub fn capture_markdown(opts: &BenchOptions, r: &CaptureResult) -> String {
    let o = &r.options;
    if o.notifications {
        let mut md = header(
            opts,
            "Capture with change notifications: from delivery to stored",
        );
        md.push_str(&format!(
            "{} mailboxes x {} messages, backfilled first, cadence a week, every mailbox's mail \
             subscription active; then {} messages delivered through `/_sim/deliver` at {} a \
             minute, round-robin over the mailboxes, with no \"sync now\": the simulator's change \
             notifications to the service's receiver are what wake the sync. Measured to the \
             email row's commit.\n\n",
            o.mailboxes, o.messages, o.samples, o.per_minute
        ));
        md.push_str(
            "| samples | stored p50 | stored p99 | stored max | Graph requests per message | service peak RSS | load avg |\n\
             |---|---|---|---|---|---|---|\n",
        );
        md.push_str(&format!(
            "| {} | **{} ms** | **{} ms** | {} ms | {:.2} | {:.0} MiB | {:.2} |\n",
            r.samples.len(),
            r.stored_p50_ms,
            r.stored_p99_ms,
            r.stored_max_ms,
            r.graph_requests_per_message.unwrap_or(0.0),
            r.service.peak_rss_mib,
            r.load_average
        ));
        return md;
    }
    let mut md = header(opts, "Capture: from delivery to stored and matched");
    md.push_str(&format!(
        "{} mailboxes x {} messages, backfilled first; then {} messages delivered one at a time \
         through `/_sim/deliver`, each followed by the tenant's run made due now (what \
         \"sync now\" and, later, change notifications do); measured to the email row's commit.\n\n",
        o.mailboxes, o.messages, o.samples
    ));
    md.push_str(
        "| samples | stored p50 | stored p99 | stored max | matched | polling at the 15-minute cadence adds | service peak RSS | load avg |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    md.push_str(&format!(
        "| {} | **{} ms** | **{} ms** | {} ms | p50 {} ms, p99 {} ms ({} of {}) | p50 {:.1} min, p99 {:.2} min | {:.0} MiB | {:.2} |\n",
        r.samples.len(),
        r.stored_p50_ms,
        r.stored_p99_ms,
        r.stored_max_ms,
        r.matched_p50_ms,
        r.matched_p99_ms,
        r.samples.iter().filter(|s| s.matched_ms.is_some()).count(),
        r.samples.len(),
        r.polling_wait_p50_min,
        r.polling_wait_p99_min,
        r.service.peak_rss_mib,
        r.load_average
    ));
    md
}
