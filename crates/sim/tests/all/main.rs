//! The simulator's own tests: one binary, one module per feature (as wasmtime does). They
//! talk to it over loopback HTTP(S) as any Graph client would; nothing of the product is used.

mod bodies;
mod calendar;
mod client;
mod delta;
mod drafts;
mod folders;
mod https_subscriptions;
mod identity;
mod mail;
mod persist;
mod robustness;
mod throttle;
