//! Change-notification subscriptions (issue 17): create one for a mailbox's mail or events,
//! renew it from the expiry Graph granted, reauthorize it, delete it.
//!
//! Graph validates the notification URL while it creates a subscription (it POSTs a
//! `validationToken` the receiver must echo within 10 s), so the receiver must be up before
//! [`create`] is called. The lifetime asked for is Outlook's longest; Graph may grant less,
//! and the answer's `expirationDateTime` is what renewal is planned from, never a fixed number.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::client::GraphClient;
use super::error::GraphError;

/// Outlook's longest subscription lifetime in minutes (7 days, less a margin for clock skew):
/// what is asked for on creation and renewal.
pub const MAX_LIFETIME_MINUTES: i64 = 10_080 - 60;

/// What a subscription watches, as a Graph resource path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// All of a mailbox's mail: `/users/{id}/messages`.
    Mail,
    /// A mailbox's calendar events: `/users/{id}/events`.
    Events,
}

/// What creating a subscription needs.
#[derive(Debug, Clone)]
pub struct NewSubscription<'a> {
    /// The mailbox's Graph user id or address.
    pub mailbox: &'a str,
    /// Mail or events.
    pub resource: Resource,
    /// Where Graph posts notifications.
    pub notification_url: &'a str,
    /// Where Graph posts lifecycle events (`reauthorizationRequired`, `subscriptionRemoved`,
    /// `missed`); can only be set on creation.
    pub lifecycle_url: &'a str,
    /// The per-subscription secret Graph echoes in every notification (at most 128 chars).
    pub client_state: &'a str,
}

/// A subscription as Graph answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantedSubscription {
    /// Graph's id of it.
    pub id: String,
    /// When it lapses unless renewed: what Graph granted, not what was asked.
    pub expires: DateTime<Utc>,
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn asked_expiry() -> String {
    (Utc::now() + chrono::Duration::minutes(MAX_LIFETIME_MINUTES))
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn granted(v: &Value, mailbox: &str) -> Result<GrantedSubscription, GraphError> {
    let bad = |m: String| GraphError::Malformed {
        mailbox: mailbox.to_string(),
        detail: m,
    };
    let id = v["id"]
        .as_str()
        .ok_or_else(|| bad("the answer has no subscription id".into()))?
        .to_string();
    let expires = v["expirationDateTime"]
        .as_str()
        .ok_or_else(|| bad("the answer has no expirationDateTime".into()))?
        .parse::<DateTime<Utc>>()
        .map_err(|e| bad(format!("expirationDateTime is not a time: {e}")))?;
    Ok(GrantedSubscription { id, expires })
}

/// `POST /subscriptions` for `created,updated,deleted` changes of the mailbox's mail or
/// events. Not retried by the client on a lost answer beyond its usual retries: a duplicate
/// Graph made meanwhile is unknown here, so its notifications are refused and it lapses.
pub async fn create(
    client: &GraphClient,
    sub: &NewSubscription<'_>,
) -> Result<GrantedSubscription, GraphError> {
    let kind = match sub.resource {
        Resource::Mail => "messages",
        Resource::Events => "events",
    };
    let body = json!({
        "changeType": "created,updated,deleted",
        "notificationUrl": sub.notification_url,
        "lifecycleNotificationUrl": sub.lifecycle_url,
        "resource": format!("/users/{}/{kind}", sub.mailbox),
        "expirationDateTime": asked_expiry(),
        "clientState": sub.client_state,
    });
    let v = client
        .send(
            sub.mailbox,
            reqwest::Method::POST,
            "subscriptions",
            Some(&body),
        )
        .await?;
    granted(&v, sub.mailbox)
}

/// `PATCH /subscriptions/{id}` with Outlook's longest lifetime; the answer's expiry is what
/// Graph granted.
pub async fn renew(
    client: &GraphClient,
    mailbox: &str,
    id: &str,
) -> Result<GrantedSubscription, GraphError> {
    let body = json!({ "expirationDateTime": asked_expiry() });
    let v = client
        .send(
            mailbox,
            reqwest::Method::PATCH,
            &format!("subscriptions/{}", enc(id)),
            Some(&body),
        )
        .await?;
    granted(&v, mailbox)
}

/// `POST /subscriptions/{id}/reauthorize`: the answer to `reauthorizationRequired`.
pub async fn reauthorize(client: &GraphClient, mailbox: &str, id: &str) -> Result<(), GraphError> {
    client
        .send(
            mailbox,
            reqwest::Method::POST,
            &format!("subscriptions/{}/reauthorize", enc(id)),
            None,
        )
        .await?;
    Ok(())
}

/// `DELETE /subscriptions/{id}`. A subscription Graph no longer knows counts as deleted.
pub async fn delete(client: &GraphClient, mailbox: &str, id: &str) -> Result<(), GraphError> {
    match client
        .send(
            mailbox,
            reqwest::Method::DELETE,
            &format!("subscriptions/{}", enc(id)),
            None,
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(GraphError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}
