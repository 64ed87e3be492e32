//! The default plugins (`plugins/`), built for wasm32-wasip2 by this crate's `build.rs` and embedded
//! in the binary, so a fresh installation has a working exclusion, mapping and matching plugin
//! before an admin installs any of their own.

use super::Kind;

/// A default plugin: its crate name, kind, component bytes and shipped case file.
pub struct Builtin {
    /// The crate's name under `plugins/`, which is also the name its `describe()` answers.
    pub name: &'static str,
    /// The slot it fills.
    pub kind: Kind,
    /// The component, as `build.rs` built it for wasm32-wasip2.
    pub wasm: &'static [u8],
    /// Where the component was built (for tools that want a path).
    pub path: &'static str,
    /// `plugins/<name>/cases.toml`.
    pub cases: &'static str,
}

/// The three default plugins, one per kind, in [`Kind::ALL`] order.
pub static BUILTINS: [Builtin; 3] = [
    Builtin {
        name: "exclusion-rules",
        kind: Kind::Exclusion,
        wasm: include_bytes!(env!("M365SYNC_WASM_EXCLUSION_RULES")),
        path: env!("M365SYNC_WASM_EXCLUSION_RULES"),
        cases: include_str!("../../../plugins/exclusion-rules/cases.toml"),
    },
    Builtin {
        name: "field-mapping",
        kind: Kind::Mapping,
        wasm: include_bytes!(env!("M365SYNC_WASM_FIELD_MAPPING")),
        path: env!("M365SYNC_WASM_FIELD_MAPPING"),
        cases: include_str!("../../../plugins/field-mapping/cases.toml"),
    },
    Builtin {
        name: "contact-matching",
        kind: Kind::Matching,
        wasm: include_bytes!(env!("M365SYNC_WASM_CONTACT_MATCHING")),
        path: env!("M365SYNC_WASM_CONTACT_MATCHING"),
        cases: include_str!("../../../plugins/contact-matching/cases.toml"),
    },
];

/// The default plugin of `kind`.
pub fn builtin(kind: Kind) -> &'static Builtin {
    BUILTINS
        .iter()
        .find(|b| b.kind == kind)
        .expect("one builtin per kind")
}
