//! What the admin API's handlers take from a request: the caller ([`Caller`], its bearer token
//! or the console's cookie resolved to an [`Actor`]), an org admin's org ([`OrgScope`]), the
//! query string ([`Q`], decoded as the API always has: `+` as a space, then percent escapes)
//! and the body ([`Body`], bounded by the route's limit). A refusal is the API's own
//! `{"error"}` answer, so a handler never sees a request it may not serve.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use bytes::Bytes;
use hyper::StatusCode;

use super::access::{authenticate, Actor};
use super::api::{access_error, form_pairs, Answer};
use super::Shared;

/// The authenticated caller of a request: 401 without a known token, 403 for a cookie-signed
/// change that does not come from the console (see [`super::console::credential`]).
pub(super) struct Caller(pub Actor);

impl FromRequestParts<Arc<Shared>> for Caller {
    type Rejection = Answer;

    async fn from_request_parts(
        parts: &mut Parts,
        shared: &Arc<Shared>,
    ) -> Result<Self, Self::Rejection> {
        let bearer = super::console::credential(&parts.method, &parts.headers)
            .map_err(|refused| refused.answer())?;
        authenticate(
            &shared.env.store,
            &shared.opts.admin_token,
            bearer.as_deref(),
        )
        .await
        .map(Caller)
        .map_err(access_error)
    }
}

/// A caller with admin rights over the path's `{org}` (the service admin or that org's
/// admin), and the org's id. Another org's admin gets the 404 a missing org gets; a user
/// token 403.
pub(super) struct OrgScope {
    pub actor: Actor,
    pub org: String,
    pub org_id: i64,
}

impl FromRequestParts<Arc<Shared>> for OrgScope {
    type Rejection = Answer;

    async fn from_request_parts(
        parts: &mut Parts,
        shared: &Arc<Shared>,
    ) -> Result<Self, Self::Rejection> {
        let Caller(actor) = Caller::from_request_parts(parts, shared).await?;
        let org = path_param(parts, shared, "org").await?;
        actor.require_org_admin(&org).map_err(access_error)?;
        let org_id = shared
            .env
            .store
            .org_id(&org)
            .await
            .map_err(|e| access_error(e.into()))?;
        Ok(OrgScope { actor, org, org_id })
    }
}

/// One parameter of the matched route's path, percent-decoded.
pub(super) async fn path_param(
    parts: &mut Parts,
    shared: &Arc<Shared>,
    name: &str,
) -> Result<String, Answer> {
    let params = RawPathParams::from_request_parts(parts, shared)
        .await
        .map_err(|e| super::api::error(StatusCode::BAD_REQUEST, e.body_text()))?;
    params
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
        .ok_or_else(|| {
            super::api::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the route has no {{{name}}}"),
            )
        })
}

/// The query string's pairs.
pub(super) struct Q(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Q {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Q(form_pairs(parts.uri.query().unwrap_or(""))))
    }
}

/// The request's body, whole. Over the route's limit (see [`super::api::body_limit`]) the read
/// fails and the answer is 413, worded by that layer.
pub(super) struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = Answer;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        match axum::body::to_bytes(req.into_body(), usize::MAX).await {
            Ok(b) => Ok(Body(b)),
            // Plain text: the route's limit layer words it with its size.
            Err(_) => Err(hyper::Response::builder()
                .status(StatusCode::PAYLOAD_TOO_LARGE)
                .header("content-type", "text/plain; charset=utf-8")
                .body(http_body_util::Full::new(Bytes::from_static(
                    b"length limit exceeded",
                )))
                .expect("static response parts")),
        }
    }
}
