//! End-to-end tests: one binary, one module per feature (as wasmtime does).

mod plugin_support;
mod support;

mod plugin_cache;
mod plugin_cases;
mod plugin_sandbox;
mod plugin_scope;

mod sim_delta;
mod sim_https_subscriptions;
mod sim_identity;
mod sim_mail;
mod sim_throttle;
