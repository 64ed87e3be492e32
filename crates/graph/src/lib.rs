//! The Microsoft Graph client: tokens per tenant ([`auth`], built from the store by the
//! product's `credentials` module; delegated consent through [`authorize`]), requests with Outlook-aware
//! throttling and retries ([`client`]) paced to the mailbox budget ([`pace`]), delta paging
//! ([`delta`]), and change-notification subscriptions ([`subscriptions`]). Errors ([`error`]) say
//! which tenant or mailbox failed and what to do.

pub mod auth;
pub mod authorize;
pub mod client;
pub mod delta;
pub mod error;
pub mod folders;
pub mod pace;
pub mod subscriptions;
pub mod upload;

pub use auth::{AppCredentials, DelegatedCredentials, TokenCache};
pub use client::{ClientConfig, GraphClient, Observer, RawBody, RequestObserver};
pub use error::{AuthError, GraphError, RequestIds};
pub use pace::Budget;

/// An HTTP client for Graph and the identity platform. It trusts the operating system's root
/// certificates (read at start from the platform's store: on Linux the `ca-certificates`
/// bundle, or the file `SSL_CERT_FILE` names), so a corporate TLS-inspecting proxy's CA
/// installed on the host works, plus every certificate in `extra_ca` (PEM, one or more: the
/// `extra_ca_file` setting, e.g. the simulator's local CA). It speaks HTTP/2 where the server
/// offers it (Graph does, over TLS) and HTTP/1.1 otherwise. Redirects are not followed (token
/// endpoints must not redirect, and Graph never needs to).
pub fn http_client(extra_ca: Option<&[u8]>) -> Result<reqwest::Client, reqwest::Error> {
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(120))
        .pool_max_idle_per_host(32);
    if let Some(pem) = extra_ca {
        for cert in reqwest::Certificate::from_pem_bundle(pem)? {
            b = b.add_root_certificate(cert);
        }
    }
    b.build()
}

/// A fresh random (version 4) UUID in its usual hyphenated form: the `client-request-id` sent
/// with every Graph and token request, which Microsoft support asks for next to the answer's
/// `request-id` when a request is investigated.
pub fn new_client_request_id() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
