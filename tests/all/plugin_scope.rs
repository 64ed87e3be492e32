//! Host imports are scoped to the calling tenant: a plugin running for tenant A cannot reach
//! tenant B's contacts, rules or sync users, whatever it asks for.

use m365sync_plugin::bindings::types::*;
use m365sync_plugin::builtin::builtin;
use m365sync_plugin::host::RuleDef;
use m365sync_plugin::{Kind, Plugin, TenantData};

use crate::plugin_support::*;

fn contact(id: &str, email: &str) -> Contact {
    Contact {
        id: id.into(),
        name: id.into(),
        entity: None,
        email: Some(email.into()),
        alternate_email: None,
        contact_points: Vec::new(),
    }
}

fn tenant(org: &str, name: &str, contacts: Vec<Contact>, rules: Vec<RuleDef>) -> TenantData {
    TenantData {
        org: org.into(),
        tenant: name.into(),
        internal_domains: vec![format!("{name}.example")],
        rules,
        contacts,
        sync_users: vec![format!("user@{name}.example")],
        ..TenantData::default()
    }
}

#[test]
fn a_tenant_a_plugin_cannot_see_tenant_b_contacts() {
    let plugin = Plugin::load(engine(), Kind::Matching, builtin(Kind::Matching).wasm).unwrap();
    let a = ctx(tenant(
        "org-a",
        "a",
        vec![contact("a-pat", "pat@client.example")],
        vec![],
    ));
    let b = ctx(tenant(
        "org-b",
        "b",
        vec![contact("b-kim", "kim@other.example")],
        vec![],
    ));
    let record = MatchInput {
        record_id: "r1".into(),
        user: None,
        addresses: vec![
            address(AddressRole::From, "kim@other.example"),
            address(AddressRole::To, "pat@client.example"),
        ],
        conversation_id: None,
        thread_matches: vec![],
    };
    let for_a = plugin.match_records(&a, std::slice::from_ref(&record));
    let ids: Vec<_> = for_a.results[0]
        .as_ref()
        .unwrap()
        .iter()
        .map(|m| m.contact.clone())
        .collect();
    assert_eq!(ids, ["a-pat"], "tenant A sees only its own contacts");
    let for_b = plugin.match_records(&b, &[record]);
    let ids: Vec<_> = for_b.results[0]
        .as_ref()
        .unwrap()
        .iter()
        .map(|m| m.contact.clone())
        .collect();
    assert_eq!(ids, ["b-kim"]);
}

#[test]
fn a_tenant_a_plugin_cannot_see_tenant_b_rules_or_sync_users() {
    let plugin = Plugin::load(engine(), Kind::Exclusion, builtin(Kind::Exclusion).wasm).unwrap();
    let rule = RuleDef {
        rule: Rule {
            id: "b-drop-client".into(),
            level: Level::Tenant,
            effect: Effect::Exclude,
            target: RuleTarget::AnyAddress,
            pattern: "*@client.example".into(),
        },
        user: None,
    };
    let a = ctx(tenant("org", "a", vec![], vec![]));
    let b = ctx(tenant("org", "b", vec![], vec![rule]));
    let mail = email("hi", "pat@client.example");
    let in_a = plugin.exclude_emails(&a, std::slice::from_ref(&mail));
    assert_eq!(in_a.results[0].as_ref().unwrap().decision, Decision::Keep);
    let in_b = plugin.exclude_emails(&b, &[mail]);
    assert_eq!(
        in_b.results[0].as_ref().unwrap().rule.as_deref(),
        Some("b-drop-client")
    );

    // B's sync user is an ordinary address to A's matching plugin, and the reverse.
    let matching = Plugin::load(engine(), Kind::Matching, builtin(Kind::Matching).wasm).unwrap();
    let contacts = vec![contact("c", "user@b.example")];
    let a = ctx(tenant("org", "a", contacts.clone(), vec![]));
    let b = ctx(tenant("org", "b", contacts, vec![]));
    let record = MatchInput {
        record_id: "r".into(),
        user: None,
        addresses: vec![address(AddressRole::From, "user@b.example")],
        conversation_id: None,
        thread_matches: vec![],
    };
    let in_a = matching.match_records(&a, std::slice::from_ref(&record));
    assert_eq!(in_a.results[0].as_ref().unwrap().len(), 1);
    let in_b = matching.match_records(&b, &[record]);
    assert!(
        in_b.results[0].as_ref().unwrap().is_empty(),
        "E9 in tenant b"
    );
    assert!(in_b
        .log
        .iter()
        .any(|l| l.level == LogLevel::Warn && l.message.contains("sync user")));
}
