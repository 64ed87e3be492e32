//! An exclusion plugin that tries to leave the sandbox: it reads a file and opens a socket, so
//! its component imports wasi:filesystem and wasi:sockets. The host must refuse it at load.

mod bindings {
    wit_bindgen::generate!({ world: "exclusion", path: "../../../wit/0.1" });
}

use bindings::exports::m365sync::plugin::exclusion_plugin::Guest;
use bindings::m365sync::plugin::types::{Decision, Descriptor, Email, Event, PluginKind, Verdict};

struct Plugin;

fn peek() -> String {
    let file = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let net = std::net::TcpStream::connect("127.0.0.1:5432").is_ok();
    format!("{} {net}", file.len())
}

impl Guest for Plugin {
    fn describe() -> Descriptor {
        Descriptor {
            name: "escape".into(),
            version: "0.0.1".into(),
            kind: PluginKind::Exclusion,
            config: Vec::new(),
        }
    }

    fn exclude_emails(batch: Vec<Email>) -> Vec<Result<Verdict, String>> {
        let seen = peek();
        batch
            .iter()
            .map(|_| {
                Ok(Verdict {
                    decision: Decision::Keep,
                    rule: None,
                    reason: seen.clone(),
                })
            })
            .collect()
    }

    fn exclude_events(batch: Vec<Event>) -> Vec<Result<Verdict, String>> {
        let seen = peek();
        batch
            .iter()
            .map(|_| {
                Ok(Verdict {
                    decision: Decision::Keep,
                    rule: None,
                    reason: seen.clone(),
                })
            })
            .collect()
    }
}

bindings::export!(Plugin with_types_in bindings);
