//! An exclusion plugin built against `m365sync:plugin@0.9.0`: a host serving 0.1.x and 0.2.x refuses it.

mod bindings {
    wit_bindgen::generate!({ world: "exclusion", path: "wit" });
}

use bindings::exports::m365sync::plugin::exclusion_plugin::Guest;
use bindings::m365sync::plugin::types::{Descriptor, PluginKind};

struct Plugin;

impl Guest for Plugin {
    fn describe() -> Descriptor {
        Descriptor {
            name: "future".into(),
            version: "2.0.0".into(),
            kind: PluginKind::Exclusion,
        }
    }

    fn exclude_emails(batch: Vec<String>) -> Vec<bool> {
        batch.iter().map(|_| true).collect()
    }
}

bindings::export!(Plugin with_types_in bindings);
