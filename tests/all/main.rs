//! End-to-end tests: one binary, one module per feature (as wasmtime does).

mod support;

mod sim_calendar;
mod sim_delta;
