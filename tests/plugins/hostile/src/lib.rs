//! An exclusion plugin that misbehaves on purpose, chosen per record by its subject:
//! `loop` spins forever, `bomb` allocates until refused, `trap` panics (a trap), `huge` answers
//! a 4 MiB reason, `extra` answers more verdicts than records, `chatty` prints 1 MiB to stdout,
//! `greedy` asks the host for the contacts of 20,000 addresses, `recurse` overflows its stack;
//! anything else is kept.

mod bindings {
    wit_bindgen::generate!({ world: "exclusion", path: "../../../wit/0.1" });
}

use bindings::exports::m365sync::plugin::exclusion_plugin::Guest;
use bindings::m365sync::plugin::host;
use bindings::m365sync::plugin::types::{Decision, Descriptor, Email, Event, PluginKind, Verdict};

struct Plugin;

/// Recurses without end (each frame keeps a buffer alive, so no tail call can remove it): the
/// guest's stack overflows, which the host must name in the record's error.
#[allow(unconditional_recursion)]
fn deep(n: u64) -> u64 {
    let frame = std::hint::black_box([n; 64]);
    deep(n + 1).wrapping_add(frame[(n % 64) as usize])
}

fn keep() -> Verdict {
    Verdict {
        decision: Decision::Keep,
        rule: None,
        reason: "ok".into(),
    }
}

impl Guest for Plugin {
    fn describe() -> Descriptor {
        Descriptor {
            name: "hostile".into(),
            version: "0.0.1".into(),
            kind: PluginKind::Exclusion,
            config: Vec::new(),
        }
    }

    fn exclude_emails(batch: Vec<Email>) -> Vec<Result<Verdict, String>> {
        let mut out = Vec::new();
        for e in &batch {
            match e.subject.as_str() {
                "loop" => {
                    let mut n: u64 = 0;
                    loop {
                        n = std::hint::black_box(n.wrapping_add(1));
                    }
                }
                "bomb" => {
                    let mut hoard: Vec<Vec<u8>> = Vec::new();
                    loop {
                        hoard.push(std::hint::black_box(vec![1u8; 1 << 20]));
                    }
                }
                "trap" => panic!("asked to trap"),
                "recurse" => out.push(Ok(Verdict {
                    decision: Decision::Keep,
                    rule: None,
                    reason: format!("{}", deep(std::hint::black_box(1))),
                })),
                "huge" => out.push(Ok(Verdict {
                    decision: Decision::Keep,
                    rule: None,
                    reason: "x".repeat(4 << 20),
                })),
                "chatty" => {
                    for i in 0..1024 {
                        println!("{i:04} {}", "y".repeat(1019));
                    }
                    out.push(Ok(keep()));
                }
                "greedy" => {
                    let many: Vec<String> =
                        (0..20_000).map(|i| format!("a{i}@x.example")).collect();
                    let found = host::contacts_by_email(&many);
                    out.push(Ok(Verdict {
                        decision: Decision::Keep,
                        rule: None,
                        reason: format!("{}", found.len()),
                    }));
                }
                "extra" => {
                    out.push(Ok(keep()));
                    out.push(Ok(keep()));
                }
                _ => out.push(Ok(keep())),
            }
        }
        out
    }

    fn exclude_events(batch: Vec<Event>) -> Vec<Result<Verdict, String>> {
        batch.iter().map(|_| Ok(keep())).collect()
    }
}

bindings::export!(Plugin with_types_in bindings);
