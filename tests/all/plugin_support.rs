//! Helpers of the plugin tests: one shared engine, the test components, small records.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use m365sync_plugin::bindings::types::*;
use m365sync_plugin::call::CallContext;
use m365sync_plugin::{EngineConfig, Kind, Plugin, PluginEngine, TenantData};

/// One engine for the tests that do not need their own configuration.
pub fn engine() -> &'static PluginEngine {
    static ENGINE: OnceLock<PluginEngine> = OnceLock::new();
    ENGINE.get_or_init(|| PluginEngine::new(EngineConfig::default()).expect("engine starts"))
}

/// The components crates/test-programs built from tests/plugins/.
pub use m365sync_test_programs::{ESCAPE, FAILMATCH, FUTURE_VERSION, HOSTILE, NOOP_V0_2, REMAP};

pub fn load(kind: Kind, path: &str) -> Plugin {
    Plugin::load_file(engine(), kind, std::path::Path::new(path)).expect("the plugin loads")
}

pub fn ctx(tenant: TenantData) -> CallContext {
    CallContext::new(tenant, BTreeMap::new())
}

pub fn address(role: AddressRole, email: &str) -> Address {
    Address {
        role,
        email: email.into(),
        name: String::new(),
    }
}

/// A received email with `subject` from `from` to alice.
pub fn email(subject: &str, from: &str) -> Email {
    Email {
        id: format!("id-{subject}"),
        mailbox: "alice@firm.com".into(),
        user: Some("alice".into()),
        folder: "Inbox".into(),
        direction: Direction::Received,
        addresses: vec![
            address(AddressRole::From, from),
            address(AddressRole::To, "alice@firm.com"),
        ],
        subject: subject.into(),
        body: Body {
            content_type: BodyType::Text,
            content: String::new(),
            truncated: false,
        },
        preview: String::new(),
        sent: None,
        received: None,
        categories: Vec::new(),
        importance: Importance::Normal,
        headers: Vec::new(),
        attachments: Vec::new(),
        internet_message_id: None,
        conversation_id: None,
        is_draft: false,
    }
}
