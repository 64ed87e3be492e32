//! The Microsoft Graph client: tokens per tenant ([`auth`], built from the store by the
//! product's `credentials` module; delegated consent through [`authorize`]), requests with Outlook-aware
//! throttling and retries ([`client`]), and delta paging ([`delta`]). Errors ([`error`]) say
//! which tenant or mailbox failed and what to do.

pub mod auth;
pub mod authorize;
pub mod client;
pub mod delta;
pub mod error;
pub mod folders;
pub mod upload;

pub use auth::{AppCredentials, DelegatedCredentials, TokenCache};
pub use client::{ClientConfig, GraphClient, RawBody};
pub use error::{AuthError, GraphError};

/// An HTTP client for Graph and the identity platform, trusting `extra_ca` (PEM) besides the
/// system roots: how m365sync talks to the simulator's https. Redirects are not followed
/// (token endpoints must not redirect, and Graph never needs to).
pub fn http_client(extra_ca: Option<&[u8]>) -> Result<reqwest::Client, reqwest::Error> {
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(120))
        .pool_max_idle_per_host(32);
    if let Some(pem) = extra_ca {
        b = b.add_root_certificate(reqwest::Certificate::from_pem(pem)?);
    }
    b.build()
}
