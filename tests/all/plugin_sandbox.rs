//! Hostile and ill-fitting components: each failure stays with the records that cause it, and
//! components outside the contract are refused at load with a message that says why.

use std::time::{Duration, Instant};

use m365sync_plugin::builtin::builtin;
use m365sync_plugin::call::CallContext;
use m365sync_plugin::{Kind, Plugin, PluginError, RecordError, TenantData};

use crate::plugin_support::*;

fn hostile_ctx() -> CallContext {
    let mut ctx = ctx(TenantData::default());
    ctx.limits.call_timeout = Duration::from_millis(200);
    ctx.limits.max_memory_bytes = 16 << 20;
    ctx
}

#[test]
fn an_infinite_loop_times_out_and_only_its_record_fails() {
    let plugin = load(Kind::Exclusion, HOSTILE);
    let ctx = hostile_ctx();
    let batch = [
        email("a", "x@c.example"),
        email("loop", "x@c.example"),
        email("b", "x@c.example"),
    ];
    let started = Instant::now();
    let out = plugin.exclude_emails(&ctx, &batch);
    let elapsed = started.elapsed();
    assert!(out.results[0].is_ok(), "{:?}", out.results[0]);
    assert_eq!(out.results[1], Err(RecordError::Timeout { ms: 200 }));
    assert!(out.results[2].is_ok(), "{:?}", out.results[2]);
    // The batch call and the looping record's own call each time out once.
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    // The next call, on a fresh store, works.
    let next = plugin.exclude_emails(&ctx, &[email("c", "x@c.example")]);
    assert!(next.results[0].is_ok());
}

#[test]
fn the_isolation_budget_bounds_a_batch_of_loops() {
    let plugin = load(Kind::Exclusion, HOSTILE);
    let mut ctx = hostile_ctx();
    ctx.limits.call_timeout = Duration::from_millis(50);
    ctx.limits.isolation_budget = Duration::from_millis(100);
    let batch: Vec<_> = (0..20).map(|_| email("loop", "x@c.example")).collect();
    let started = Instant::now();
    let out = plugin.exclude_emails(&ctx, &batch);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "took {:?}",
        started.elapsed()
    );
    assert!(out
        .results
        .iter()
        .all(|r| *r == Err(RecordError::Timeout { ms: 50 })));
}

#[test]
fn a_memory_bomb_hits_the_limit() {
    let plugin = load(Kind::Exclusion, HOSTILE);
    let ctx = hostile_ctx();
    let out = plugin.exclude_emails(
        &ctx,
        &[email("bomb", "x@c.example"), email("ok", "x@c.example")],
    );
    assert_eq!(
        out.results[0],
        Err(RecordError::MemoryLimit { bytes: 16 << 20 })
    );
    assert!(out.results[1].is_ok());
    assert!(plugin
        .exclude_emails(&ctx, &[email("ok", "x@c.example")])
        .results[0]
        .is_ok());
}

#[test]
fn a_trap_fails_only_the_records_that_trap() {
    let plugin = load(Kind::Exclusion, HOSTILE);
    let ctx = hostile_ctx();
    let batch = [
        email("trap", "x@c.example"),
        email("a", "x@c.example"),
        email("trap", "y@c.example"),
        email("b", "x@c.example"),
    ];
    let out = plugin.exclude_emails(&ctx, &batch);
    assert!(
        matches!(&out.results[0], Err(RecordError::Trap { .. })),
        "{:?}",
        out.results[0]
    );
    assert!(out.results[1].is_ok());
    assert!(matches!(&out.results[2], Err(RecordError::Trap { .. })));
    assert!(out.results[3].is_ok());
    // The panic message reached the tenant's log through the captured stderr.
    assert!(
        out.log.iter().any(|l| l.message.contains("asked to trap")),
        "{:?}",
        out.log
    );
}

#[test]
fn a_huge_answer_is_refused_and_a_wrong_count_is_malformed() {
    let plugin = load(Kind::Exclusion, HOSTILE);
    let ctx = hostile_ctx();
    let out = plugin.exclude_emails(
        &ctx,
        &[email("huge", "x@c.example"), email("ok", "x@c.example")],
    );
    assert!(
        matches!(out.results[0], Err(RecordError::OutputTooLarge { limit, .. }) if limit == 1 << 20),
        "{:?}",
        out.results[0]
    );
    assert!(out.results[1].is_ok());

    let out = plugin.exclude_emails(
        &ctx,
        &[email("ok", "x@c.example"), email("extra", "x@c.example")],
    );
    assert!(out.results[0].is_ok());
    assert_eq!(
        out.results[1],
        Err(RecordError::Malformed {
            message: "2 answers for 1 records".into()
        })
    );
}

#[test]
fn a_record_too_large_to_hand_over_fails_alone() {
    let plugin = load(Kind::Exclusion, HOSTILE);
    let ctx = hostile_ctx();
    let mut big = email("big", "x@c.example");
    big.body.content = "x".repeat(3 << 20);
    let out = plugin.exclude_emails(&ctx, &[big, email("ok", "x@c.example")]);
    assert!(matches!(
        out.results[0],
        Err(RecordError::InputTooLarge { .. })
    ));
    assert!(out.results[1].is_ok());
    assert_eq!(
        out.instances, 1,
        "the large record never reached the plugin"
    );
}

#[test]
fn filesystem_and_socket_imports_are_refused_by_name() {
    let err = Plugin::load_file(engine(), Kind::Exclusion, ESCAPE.as_ref())
        .err()
        .expect("refused");
    let PluginError::ForbiddenImports(names) = &err else {
        panic!("expected forbidden imports, got {err}");
    };
    assert!(
        names.iter().any(|n| n.starts_with("wasi:filesystem/")),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.starts_with("wasi:sockets/")),
        "{names:?}"
    );
    let message = err.to_string();
    assert!(message.contains("wasi:sockets/"), "{message}");
}

#[test]
fn a_component_of_another_world_is_refused() {
    let matching = builtin(Kind::Matching);
    let err = Plugin::load(engine(), Kind::Exclusion, matching.wasm)
        .err()
        .expect("refused");
    assert!(
        matches!(&err, PluginError::WrongWorld { expected: Kind::Exclusion, found } if found.iter().any(|f| f.starts_with("m365sync:plugin/matching-plugin@0.2"))),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("does not export the exclusion world"),
        "{err}"
    );
}

#[test]
fn a_component_of_an_incompatible_contract_version_is_refused() {
    let err = Plugin::load_file(engine(), Kind::Exclusion, FUTURE_VERSION.as_ref())
        .err()
        .expect("refused");
    assert!(
        matches!(&err, PluginError::IncompatibleVersion { found } if found == "m365sync:plugin/exclusion-plugin@0.9.0"),
        "{err}"
    );
}

#[test]
fn bytes_that_are_not_a_component_are_refused() {
    let err = Plugin::load(engine(), Kind::Exclusion, b"\0asm\x01\0\0\0")
        .err()
        .expect("refused");
    assert!(matches!(err, PluginError::Compile(_)), "{err}");
}

#[test]
fn calling_a_plugin_as_another_kind_fails_each_record() {
    let plugin = Plugin::load(engine(), Kind::Matching, builtin(Kind::Matching).wasm).unwrap();
    let out = plugin.exclude_emails(&ctx(TenantData::default()), &[email("a", "x@c.example")]);
    assert_eq!(
        out.results[0],
        Err(RecordError::WrongKind {
            actual: Kind::Matching,
            called: Kind::Exclusion
        })
    );
}

#[test]
fn the_default_plugins_import_only_the_host_and_inert_wasi() {
    for b in &m365sync_plugin::builtin::BUILTINS {
        let names = m365sync_plugin::sandbox::imports_of(engine().engine(), b.wasm).unwrap();
        eprintln!("{}: {names:?}", b.name);
        assert!(
            names.iter().any(|n| n == "m365sync:plugin/host@0.2.0"),
            "{names:?}"
        );
        for n in &names {
            assert!(
                n.starts_with("m365sync:plugin/")
                    || n.starts_with("wasi:cli/")
                    || n.starts_with("wasi:io/")
                    || n.starts_with("wasi:random/"),
                "{}: unexpected import {n}",
                b.name
            );
        }
    }
}

#[test]
fn plugin_output_is_captured_bounded_and_never_fails_the_call() {
    let plugin = load(Kind::Exclusion, HOSTILE);
    let ctx = hostile_ctx();
    let out = plugin.exclude_emails(&ctx, &[email("chatty", "x@c.example")]);
    assert!(out.results[0].is_ok(), "{:?}", out.results[0]);
    let kept: usize = out.log.iter().map(|l| l.message.len()).sum();
    assert!(kept <= ctx.limits.max_log_bytes + 200, "kept {kept} bytes");
    assert!(out.log.iter().any(|l| l.message.starts_with("0000 yyy")));
    assert!(
        out.log.iter().any(|l| l
            .message
            .contains("bytes of output over the limit were dropped")),
        "{:?}",
        out.log.last()
    );
}

#[test]
fn asking_the_host_for_more_than_the_bound_traps_that_record() {
    let plugin = load(Kind::Exclusion, HOSTILE);
    let ctx = hostile_ctx();
    let out = plugin.exclude_emails(
        &ctx,
        &[email("greedy", "x@c.example"), email("ok", "x@c.example")],
    );
    match &out.results[0] {
        Err(RecordError::Trap { message }) => assert!(
            message
                .contains("host.contacts-by-email was asked for 20000 items; the limit is 10000"),
            "{message}"
        ),
        other => panic!("expected a trap, got {other:?}"),
    }
    assert!(out.results[1].is_ok());
}
