//! Graph request pipeline: authentication, throttling, injected faults, then routing to the
//! resource handlers. `$batch` sub-requests go through the same [`execute`] one by one, so each
//! is throttled on its own, as Graph does.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::identity::Caller;
use super::ids::{mix64, unit_hash};
use super::model::World;
use super::request::{GraphError, GraphResult, Prefer, SimRequest, SimResponse};
use super::stats::Stats;
use super::throttle::Refusal;
use super::Sim;

/// What every Graph handler knows about the request it serves.
pub struct Ctx<'a> {
    /// The simulator, for configuration, counters and sealing.
    pub sim: &'a Sim,
    /// Who sent the request, from its bearer token.
    pub caller: &'a Caller,
    /// The request being served.
    pub req: &'a SimRequest,
    /// What the request's `Prefer` header asks for.
    pub prefer: Prefer,
    /// `https://localhost:PORT/v1.0`: the base of links and `@odata.context`.
    pub graph_base: String,
    /// The id sent back as `request-id`, which Graph puts in every answer for support cases.
    pub request_id: String,
}

impl Ctx<'_> {
    /// Fails with Graph's 403 unless the caller holds `permission` (or a broader one).
    pub fn require(&self, permission: &str) -> Result<(), GraphError> {
        if self.caller.has(permission) {
            Ok(())
        } else if permission.starts_with("User.") || permission.starts_with("Directory.") {
            Err(GraphError::new(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            ))
        } else {
            Err(GraphError::new(
                403,
                "ErrorAccessDenied",
                "Access is denied. Check credentials and try again.",
            ))
        }
    }

    /// The request's own URL with one query parameter set (for listing nextLinks).
    pub fn same_url_with(&self, name: &str, value: &str) -> String {
        use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
        const QUERY: &AsciiSet = &CONTROLS
            .add(b' ')
            .add(b'&')
            .add(b'#')
            .add(b'+')
            .add(b'\'')
            .add(b'"');
        let path: Vec<String> = self.req.segments[1..]
            .iter()
            .map(|s| utf8_percent_encode(s, QUERY).to_string())
            .collect();
        let mut query: Vec<String> = self
            .req
            .query
            .iter()
            .filter(|(k, _)| {
                !k.trim_start_matches('$')
                    .eq_ignore_ascii_case(name.trim_start_matches('$'))
            })
            .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, QUERY)))
            .collect();
        query.push(format!("{name}={value}"));
        format!("{}/{}?{}", self.graph_base, path.join("/"), query.join("&"))
    }
}

/// The mailbox a request addresses (`/users/{id}/...` or `/me/...`), if any, resolved in the
/// caller's tenant only: another tenant's users do not exist for this caller.
pub fn target_mailbox(world: &World, caller: &Caller, req: &SimRequest) -> Option<usize> {
    match req.segments.get(1).map(String::as_str) {
        Some("users") if req.segments.len() > 3 => {
            world.tenants[caller.tenant].user_by_key(&req.segments[2])
        }
        Some("me") => caller.user,
        _ => None,
    }
}

/// A fault drawn for one request.
#[derive(Debug, PartialEq)]
enum Fault {
    None,
    Throttle,
    Unavailable,
    GatewayTimeout,
    Reset,
    Slow,
    Malformed,
}

fn draw_fault(sim: &Sim, n: u64) -> (Fault, u64, u64) {
    let f = sim.faults();
    let unit = |salt: u64| unit_hash(f.seed ^ mix64(n ^ salt));
    let fault = if unit(1) < f.rate_429 {
        Fault::Throttle
    } else if unit(2) < f.rate_503 {
        Fault::Unavailable
    } else if unit(3) < f.rate_504 {
        Fault::GatewayTimeout
    } else if unit(4) < f.rate_reset {
        Fault::Reset
    } else if unit(5) < f.rate_slow {
        Fault::Slow
    } else if unit(6) < f.rate_malformed {
        Fault::Malformed
    } else {
        Fault::None
    };
    (fault, f.latency_ms, f.slow_ms)
}

fn throttled(message: &str, retry_after: u64) -> GraphError {
    GraphError::new(429, "ApplicationThrottled", message)
        .with_header("retry-after", retry_after.to_string())
}

/// Serves one authenticated Graph request (or `$batch` sub-request).
pub async fn execute(
    sim: &Arc<Sim>,
    caller: &Caller,
    req: SimRequest,
    request_id: String,
) -> SimResponse {
    Stats::inc(&sim.stats.graph_requests);
    let client_request_id = req.header("client-request-id").map(str::to_string);
    let fail = |e: GraphError| e.into_response(&request_id, client_request_id.as_deref());
    let (mailbox, policy_refusal) = {
        let world = sim.world();
        let mailbox = target_mailbox(&world, caller, &req);
        (
            mailbox,
            mailbox.and_then(|m| access_policy_refusal(&world, caller, m)),
        )
    };
    let _permit = match mailbox {
        Some(m) => match sim
            .throttle
            .admit((caller.client_id.clone(), caller.tenant, m))
        {
            Ok(p) => Some(p),
            Err(Refusal::Concurrency) => {
                Stats::inc(&sim.stats.throttled_concurrency);
                return fail(throttled(
                    "Application is over its MailboxConcurrency limit.",
                    1,
                ));
            }
            Err(Refusal::Budget { retry_after_secs }) => {
                Stats::inc(&sim.stats.throttled_budget);
                return fail(throttled(
                    "Application is over its MailboxRequestLimit limit.",
                    retry_after_secs,
                ));
            }
        },
        None => None,
    };
    let n = sim.request_seq.fetch_add(1, Ordering::Relaxed);
    let (fault, latency_ms, slow_ms) = draw_fault(sim, n);
    if latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(latency_ms)).await;
    }
    match fault {
        Fault::Throttle => {
            Stats::inc(&sim.stats.injected_429);
            return fail(throttled(
                "Application is over its MailboxConcurrency limit.",
                1,
            ));
        }
        Fault::Unavailable => {
            Stats::inc(&sim.stats.injected_503);
            return fail(
                GraphError::new(
                    503,
                    "ServiceUnavailable",
                    "The service is temporarily unavailable.",
                )
                .with_header("retry-after", "1"),
            );
        }
        Fault::GatewayTimeout => {
            Stats::inc(&sim.stats.injected_504);
            return fail(GraphError::new(
                504,
                "GatewayTimeout",
                "The request timed out.",
            ));
        }
        Fault::Reset => {
            Stats::inc(&sim.stats.injected_reset);
            let mut r = SimResponse::empty(500);
            r.reset = true;
            return r;
        }
        Fault::Slow => {
            Stats::inc(&sim.stats.injected_slow);
            tokio::time::sleep(Duration::from_millis(slow_ms)).await;
        }
        _ => {}
    }
    if let Some(refusal) = policy_refusal {
        return fail(refusal);
    }
    let ctx = Ctx {
        sim,
        caller,
        prefer: req.prefer(),
        req: &req,
        graph_base: format!("{}/{}", sim.public_base(), req.segments[0]),
        request_id: request_id.clone(),
    };
    let result = {
        let mut world = sim.world();
        let r = route(&ctx, &mut world);
        let changes = std::mem::take(&mut world.pending_changes);
        drop(world);
        sim.subscriptions.enqueue(sim, changes);
        r
    };
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => fail(e),
    };
    // Only JSON is cut short: the fault stands for a body a JSON parser must refuse. Raw bytes
    // (`$value`) halved behind a matching Content-Length could not be told apart by any client.
    let is_json = resp.headers.iter().any(|(name, value)| {
        *name == hyper::header::CONTENT_TYPE && value.as_bytes().starts_with(b"application/json")
    });
    if fault == Fault::Malformed && is_json && !resp.body.is_empty() {
        Stats::inc(&sim.stats.injected_malformed);
        resp.body = resp.body.slice(..resp.body.len() / 2);
    }
    let mut applied = Vec::new();
    if ctx.prefer.max_page_size.is_some() {
        applied.push(format!(
            "odata.maxpagesize={}",
            ctx.prefer.max_page_size.unwrap_or_default()
        ));
    }
    if ctx.prefer.immutable_ids {
        applied.push("IdType=\"ImmutableId\"".to_string());
    }
    if let Some(tz) = &ctx.prefer.time_zone {
        applied.push(format!("outlook.timezone=\"{tz}\""));
    }
    if !applied.is_empty() {
        resp = resp.with_header("preference-applied", &applied.join(", "));
    }
    resp
}

/// An application access policy refusal for app-only callers outside the policy.
fn access_policy_refusal(world: &World, caller: &Caller, mailbox: usize) -> Option<GraphError> {
    if caller.user.is_some() {
        return None;
    }
    let tenant = &world.tenants[caller.tenant];
    let policy = tenant.app(&caller.client_id)?.access_policy.as_ref()?;
    let upn = tenant.users[mailbox].upn.to_ascii_lowercase();
    (!policy.contains(&upn)).then(|| {
        GraphError::new(
            403,
            "ErrorAccessDenied",
            "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings.",
        )
    })
}

/// Routes a request below `/v1.0`.
fn route(ctx: &Ctx, world: &mut World) -> GraphResult {
    let segs = &ctx.req.segments;
    let t = ctx.caller.tenant;
    match segs.get(1).map(String::as_str) {
        Some("users") if segs.len() == 2 => super::directory::list_users(ctx, world),
        Some("users") => {
            let who = &segs[2];
            let Some(u) = world.tenants[t].user_by_key(who) else {
                return Err(if segs.len() == 3 {
                    super::directory::resource_not_found(who)
                } else {
                    GraphError::not_found(
                        "ErrorInvalidUser",
                        format!("The requested user '{who}' is invalid."),
                    )
                });
            };
            user_routes(ctx, world, t, u, &segs[3..])
        }
        Some("me") => {
            let u = ctx.caller.user.ok_or_else(|| {
                GraphError::bad_request(
                    "/me request is only valid with delegated authentication flow.",
                )
            })?;
            user_routes(ctx, world, t, u, &segs[2..])
        }
        Some("groups") => super::directory::groups(ctx, world, &segs[2..]),
        Some("organization") => super::directory::organization(ctx, world),
        Some("places") => super::directory::places(ctx, world, &segs[2..]),
        Some("subscriptions") => super::subscriptions::handle(ctx, world, &segs[2..]),
        Some(other) => Err(GraphError::bad_request(format!(
            "Resource not found for the segment '{other}'."
        ))),
        None => Err(GraphError::bad_request("Invalid version.")),
    }
}

fn user_routes(ctx: &Ctx, world: &mut World, t: usize, u: usize, rest: &[String]) -> GraphResult {
    match rest.first().map(String::as_str) {
        None => super::directory::get_user(ctx, world, t, u),
        Some("mailFolders" | "messages" | "sendMail") => {
            super::mail::handle(ctx, world, t, u, rest)
        }
        Some("events" | "calendar" | "calendarView" | "calendars") => {
            super::calendar::handle(ctx, world, t, u, rest)
        }
        Some(other) => Err(GraphError::bad_request(format!(
            "Resource not found for the segment '{other}'."
        ))),
    }
}
