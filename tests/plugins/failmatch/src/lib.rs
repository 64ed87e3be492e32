//! A matching plugin of contract 0.2 that fails on purpose, for the matching-failure tests: a
//! record with an address containing `unmatchable` is that record's error, a record with an
//! address containing `stranger` is answered with a contact the host never showed it (which
//! the host must refuse for that record alone), and every other record matches nothing.

mod bindings {
    wit_bindgen::generate!({ world: "matching", path: "../../../wit" });
}

use bindings::exports::m365sync::plugin::matching_plugin::Guest;
use bindings::m365sync::plugin::types::{
    ContactMatch, Descriptor, Fields, MatchField, MatchInput, PluginKind,
};

struct Plugin;

fn decide(input: &MatchInput) -> Result<Vec<ContactMatch>, String> {
    if let Some(a) = input
        .addresses
        .iter()
        .find(|a| a.email.contains("unmatchable"))
    {
        return Err(format!("failmatch cannot match {}", a.email));
    }
    if let Some(a) = input
        .addresses
        .iter()
        .find(|a| a.email.contains("stranger"))
    {
        return Ok(vec![ContactMatch {
            contact: "999999999".into(),
            entity: None,
            address: a.email.clone(),
            field: MatchField::Email,
            reason: "a contact the host did not show".into(),
        }]);
    }
    Ok(Vec::new())
}

impl Guest for Plugin {
    fn describe() -> Descriptor {
        Descriptor {
            name: "failmatch".into(),
            version: "0.0.1".into(),
            kind: PluginKind::Matching,
            config: Vec::new(),
            fields: Fields::empty(),
        }
    }

    fn match_records(batch: Vec<MatchInput>) -> Vec<Result<Vec<ContactMatch>, String>> {
        batch.iter().map(decide).collect()
    }
}

bindings::export!(Plugin with_types_in bindings);
