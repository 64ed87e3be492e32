//! Contract 0.1 and 0.2 plugins on one host (issue 18): each component is loaded as the
//! contract it was built against, both run on one engine, a 0.2 plugin receives only the parts
//! of a record it declared in `describe()`, and a 0.1 plugin still receives whole records.
//! That both decide alike on the same policy is `plugin_python`'s and `plugin_js`'s
//! agreement tests (0.1 components against the 0.2 default plugin); that both run side by side
//! on a live service is the mapping shadow test (`plugin_shadow`, a 0.1 candidate beside the
//! 0.2 mapping in force).

use std::collections::BTreeMap;

use m365sync_plugin::bindings::types::*;
use m365sync_plugin::builtin::builtin;
use m365sync_plugin::call::CallContext;
use m365sync_plugin::lean::{field_names, Fields};
use m365sync_plugin::{Contract, Kind, Plugin, TenantData};

use crate::plugin_python::event_from;
use crate::plugin_support::{email, engine, load, HOSTILE, NOOP_V0_2, REMAP};

/// An email with every optional part filled, so an absent one can only be the host's doing.
fn full_email() -> Email {
    let mut e = email("quarterly figures", "client@clients.example");
    e.body.content = "see attached".into();
    e.preview = "see attached".into();
    e.sent = Some("2026-11-24T09:00:00Z".into());
    e.received = Some("2026-11-24T09:00:05Z".into());
    e.categories = vec!["Clients".into()];
    e.headers = vec![Header {
        name: "X-Mailer".into(),
        value: "test".into(),
    }];
    e.attachments = vec![AttachmentInfo {
        name: "figures.pdf".into(),
        content_type: "application/pdf".into(),
        size: 1024,
        is_inline: false,
    }];
    e.internet_message_id = Some("<1@clients.example>".into());
    e.conversation_id = Some("conv-1".into());
    e
}

#[test]
fn each_component_is_served_the_contract_it_was_built_against() {
    let noop = load(Kind::Exclusion, NOOP_V0_2);
    assert_eq!(noop.contract(), Contract::V0_2);
    assert_eq!(noop.fields(), Fields::empty());
    for (kind, path) in [(Kind::Exclusion, HOSTILE), (Kind::Mapping, REMAP)] {
        let old = load(kind, path);
        assert_eq!(old.contract(), Contract::V0_1, "{path}");
        assert_eq!(
            old.fields(),
            Fields::all(),
            "a 0.1 plugin reads whole records"
        );
    }
    // The default plugins speak 0.2 and declare what their policy reads.
    let declared = |kind| {
        let p = Plugin::load(engine(), kind, builtin(kind).wasm).unwrap();
        assert_eq!(p.contract(), Contract::V0_2, "{kind}");
        field_names(p.fields())
    };
    assert_eq!(
        declared(Kind::Exclusion),
        ["user", "addresses", "subject"],
        "the rules read the user, the subject and the addresses, nothing else"
    );
    assert!(declared(Kind::Matching).is_empty());
    let mapping = declared(Kind::Mapping);
    for part in [
        "addresses",
        "names",
        "body",
        "dates",
        "attachments",
        "thread",
    ] {
        assert!(mapping.contains(&part), "{part}: {mapping:?}");
    }
}

#[test]
fn a_0_2_plugin_receives_only_what_it_declared_beside_a_0_1_plugin_on_one_engine() {
    let noop = load(Kind::Exclusion, NOOP_V0_2);
    let hostile = load(Kind::Exclusion, HOSTILE);
    let echo = CallContext::new(
        TenantData::default(),
        BTreeMap::from([("echo".to_string(), "true".to_string())]),
    );
    let email = full_email();
    let mut event = event_from(&email);
    event.organizer = email.addresses.first().cloned();
    event.recurrence = Some("Every week on Monday".into());
    event.online_meeting_provider = Some("teamsForBusiness".into());
    event.online_meeting_url = Some("https://teams.example/join/1".into());
    event.categories = vec!["Clients".into()];

    // The noop plugin declared no parts: its reason lists the optional fields that arrived.
    let out = noop.exclude_emails(&echo, std::slice::from_ref(&email));
    assert_eq!(
        out.results[0].as_ref().unwrap().reason,
        format!("{}:", email.id),
        "only the id and the scalar fields cross"
    );
    let out = noop.exclude_events(&echo, std::slice::from_ref(&event));
    assert_eq!(
        out.results[0].as_ref().unwrap().reason,
        format!("{}:", event.id)
    );

    // The same records, on the same engine, through a 0.1 plugin: whole, decided as before.
    for _ in 0..2 {
        let out = hostile.exclude_emails(&echo, std::slice::from_ref(&email));
        assert_eq!(out.results[0].as_ref().unwrap().decision, Decision::Keep);
        let out = noop.exclude_emails(&echo, std::slice::from_ref(&email));
        assert_eq!(out.results[0].as_ref().unwrap().decision, Decision::Keep);
    }

    // The default exclusion plugin (0.2) still decides on what it declared: an internal-only
    // email is dropped, a client's kept, exactly as its 0.1 build did (its cases pass too).
    let rules = Plugin::load(engine(), Kind::Exclusion, builtin(Kind::Exclusion).wasm).unwrap();
    let tenant = TenantData {
        internal_domains: vec!["firm.com".into()],
        ..TenantData::default()
    };
    let ctx = CallContext::new(tenant, BTreeMap::new());
    let internal = {
        let mut e = full_email();
        e.addresses[0].email = "bob@firm.com".into();
        e
    };
    let out = rules.exclude_emails(&ctx, &[email, internal]);
    let decisions: Vec<Decision> = out
        .results
        .iter()
        .map(|r| r.as_ref().unwrap().decision)
        .collect();
    assert_eq!(decisions, [Decision::Keep, Decision::Drop]);
}
