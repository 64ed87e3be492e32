//! End-to-end tests: one binary, one module per feature (as wasmtime does).

mod support;

mod graph_client;
mod sim_calendar;
mod sim_cli;
mod sim_delta;
mod sim_https_subscriptions;
mod sim_identity;
mod sim_mail;
mod sim_throttle;
mod store;
