//! The CRM side's logic outside the database: the CSV and JSON files contacts and entities are
//! imported from ([`import`]) and exported to ([`export`]). The records themselves live in
//! [`m365sync_store::crm`] (what an address is: [`m365sync_store::address`]).
//!
//! Both kinds go through one path: [`import::import_records`] over [`import::Importable`] (a
//! kind's columns and how a row becomes its input) and [`export::export_records`] over
//! [`export::Exportable`] (a kind's exported row), each built on the store's
//! [`m365sync_store::crm::CrmRecord`].

pub mod export;
pub mod import;
