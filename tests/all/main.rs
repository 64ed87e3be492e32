//! End-to-end tests: one binary, one module per feature (as wasmtime does).

mod admin_auth;
mod admin_cli;
mod admin_support;
mod apply;
mod graph_client;
mod plugin_cache;
mod plugin_cases;
mod plugin_python;
mod plugin_registry;
mod plugin_sandbox;
mod plugin_scaffold;
mod plugin_scope;
mod plugin_support;
mod service;
mod sim_calendar;
mod sim_cli;
mod sim_delta;
mod sim_https_subscriptions;
mod sim_identity;
mod sim_mail;
mod sim_throttle;
mod store;
mod support;
mod sync_attachments;
mod sync_email;
mod sync_storms;
