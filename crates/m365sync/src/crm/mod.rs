//! The CRM side's logic outside the database: what an email address is
//! ([`address`]), and the CSV and JSON files contacts and entities are imported from
//! ([`import`]) and exported to ([`export`]). The records themselves live in
//! [`m365sync_store::crm`].

pub mod export;
pub mod import;
