//! The control API (`/_sim/...`): lets tests, benchmarks and people change the world while a
//! client syncs: deliver mail, move or delete it, write events, expire tokens and sync state,
//! revoke secrets, change throttling and faults, read counters and logs, reset.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::config::{FaultConfig, ThrottleConfig};
use super::generate::ground_truth;
use super::ids::message_id;
use super::model::{Attachment, AttachmentKind, Content, MessageContent, Recipient, World};
use super::request::{SimRequest, SimResponse};
use super::Sim;

fn bad(message: impl Into<String>) -> SimResponse {
    SimResponse::json(400, &json!({"error": message.into()}))
}

fn ok(v: Value) -> SimResponse {
    SimResponse::json(200, &v)
}

/// The ready file's JSON: where everything is and how to sign in.
pub fn info(sim: &Sim) -> Value {
    let base = sim.public_base();
    let world = sim.world.lock().expect("world lock");
    let tenants: Vec<Value> = world
        .tenants
        .iter()
        .map(|t| {
            let apps: Vec<Value> = t.apps.iter().map(|a| json!({
                "client_id": a.client_id,
                "secrets": a.secrets.iter().map(|s| s.value.clone()).collect::<Vec<_>>(),
                "redirect_uris": a.redirect_uris,
            })).collect();
            json!({"id": t.id, "domain": t.domain, "name": t.display_name, "admin": t.admin_upn, "apps": apps})
        })
        .collect();
    json!({
        "base_url": base,
        "graph_url": format!("{base}/v1.0"),
        "authority": base,
        "ca_cert": sim.ca_cert.read().expect("ca lock").as_ref().map(|p| p.display().to_string()),
        "control_url": format!("{base}/_sim"),
        "tenants": tenants,
    })
}

/// Finds (tenant, user) for an address or object id in any tenant.
fn find_user(world: &World, who: &str) -> Option<(usize, usize)> {
    world
        .tenants
        .iter()
        .enumerate()
        .find_map(|(t, tenant)| tenant.user_by_key(who).map(|u| (t, u)))
}

fn tenant_filter(world: &World, tenant: Option<&str>) -> Result<Vec<usize>, SimResponse> {
    match tenant {
        None => Ok((0..world.tenants.len()).collect()),
        Some(key) => world
            .tenant_by_key(key)
            .map(|t| vec![t])
            .ok_or_else(|| bad(format!("no tenant '{key}'"))),
    }
}

#[derive(Deserialize)]
struct Deliver {
    from: String,
    #[serde(default)]
    from_name: Option<String>,
    to: Vec<String>,
    #[serde(default)]
    cc: Vec<String>,
    subject: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    attachments: Vec<NewAttachment>,
    #[serde(default)]
    received: Option<DateTime<Utc>>,
    #[serde(default)]
    internet_message_id: Option<String>,
    #[serde(default)]
    conversation_id: Option<String>,
    #[serde(default)]
    headers: Vec<(String, String)>,
}

#[derive(Deserialize)]
struct NewAttachment {
    name: String,
    size: u64,
    #[serde(default)]
    content_type: Option<String>,
}

#[derive(Deserialize)]
struct MessageRef {
    user: String,
    id: String,
    #[serde(default)]
    destination: Option<String>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    is_read: Option<bool>,
    #[serde(default)]
    categories: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
struct TenantArg {
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    secret: Option<String>,
}

fn deliver(world: &mut World, d: Deliver) -> SimResponse {
    let addr = |a: &str| Recipient {
        name: a.split('@').next().unwrap_or(a).to_string(),
        address: a.to_string(),
    };
    let Some((t, _)) = d.to.iter().chain(&d.cc).find_map(|a| find_user(world, a)) else {
        return bad("no recipient is a user of a simulated tenant");
    };
    let seq = world.bump();
    let now = d.received.unwrap_or_else(Utc::now);
    let sender = world.tenants[t].user_by_key(&d.from);
    let content = MessageContent {
        internet_message_id: d.internet_message_id.unwrap_or_else(|| {
            format!(
                "<ctl.{seq}.{}@{}>",
                now.timestamp_millis(),
                d.from.split('@').nth(1).unwrap_or("example")
            )
        }),
        conversation_id: d
            .conversation_id
            .unwrap_or_else(|| format!("AAQkCtl{seq:012x}")),
        conversation_index: base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            seq.to_be_bytes(),
        ),
        subject: d.subject,
        body_is_html: !d.body.is_empty() && d.body.trim_start().starts_with('<'),
        body: Arc::from(d.body.as_str()),
        from: Some(Recipient {
            name: d
                .from_name
                .unwrap_or_else(|| d.from.split('@').next().unwrap_or("").to_string()),
            address: d.from.clone(),
        }),
        to: d.to.iter().map(|a| addr(a)).collect(),
        cc: d.cc.iter().map(|a| addr(a)).collect(),
        bcc: vec![],
        reply_to: vec![],
        received: now,
        sent: now,
        is_draft: false,
        is_read: false,
        importance: "normal",
        inference_classification: "focused",
        categories: vec![],
        flagged: false,
        headers: d.headers,
        attachments: d
            .attachments
            .iter()
            .enumerate()
            .map(|(i, a)| Attachment {
                id: format!("AAMkCtlAtt{seq}_{i}"),
                name: a.name.clone(),
                kind: AttachmentKind::File {
                    content_type: a
                        .content_type
                        .clone()
                        .unwrap_or_else(|| "application/octet-stream".into()),
                    content: Content::Generated {
                        seed: seq * 31 + i as u64,
                        len: a.size,
                    },
                    is_inline: false,
                    content_id: None,
                },
                last_modified: now,
            })
            .collect(),
    };
    let internet_message_id = content.internet_message_id.clone();
    let copies = match sender {
        Some(s) => super::mail::deliver(world, t, s, content, true),
        None => {
            let mut copies = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for r in d.to.iter().chain(&d.cc) {
                if let Some(u) = world.tenants[t].user_by_key(r) {
                    if seen.insert(u) {
                        let inbox = world.tenants[t].users[u]
                            .folder_index("inbox")
                            .expect("inbox");
                        copies.push((u, world.add_message(t, u, inbox, content.clone(), true)));
                    }
                }
            }
            copies
        }
    };
    let messages: Vec<Value> = copies.iter().map(|(u, k)| json!({"user": world.tenants[t].users[*u].upn, "id": message_id::immutable(*k, world.salt)})).collect();
    ok(json!({"messages": messages, "internet_message_id": internet_message_id}))
}

fn message_op(world: &mut World, op: &str, r: MessageRef) -> SimResponse {
    let Some((t, u)) = find_user(world, &r.user) else {
        return bad(format!("no user '{}'", r.user));
    };
    let Some(key) = world.message_in_mailbox(t, u, &r.id) else {
        return bad(format!("no message '{}' in {}", r.id, r.user));
    };
    match op {
        "move" => {
            let dest = r.destination.unwrap_or_default();
            let Some(f) = world.tenants[t].users[u].folder_index(&dest) else {
                return bad(format!("no folder '{dest}'"));
            };
            world.move_message(key, f);
        }
        "delete" => world.delete_message(key),
        _ => world.update_message(key, |c| {
            if let Some(s) = r.subject {
                c.subject = s;
            }
            if let Some(v) = r.is_read {
                c.is_read = v;
            }
            if let Some(cats) = r.categories {
                c.categories = cats;
            }
        }),
    }
    ok(json!({"id": message_id::immutable(key, world.salt)}))
}

/// Serves `/_sim/...`.
pub async fn handle(sim: &Arc<Sim>, req: &SimRequest) -> SimResponse {
    let path: Vec<&str> = req.segments[1..].iter().map(String::as_str).collect();
    let method = req.method.as_str();
    macro_rules! body {
        ($t:ty) => {
            match serde_json::from_slice::<$t>(if req.body.is_empty() {
                b"{}"
            } else {
                &req.body
            }) {
                Ok(v) => v,
                Err(e) => return bad(format!("invalid JSON body: {e}")),
            }
        };
    }
    let response = match (method, path.as_slice()) {
        ("GET", ["health"]) => ok(json!({"ok": true})),
        ("GET", ["info"]) => ok(info(sim)),
        ("GET", ["ground-truth"]) => ok(ground_truth(&sim.world.lock().expect("world lock"))),
        ("GET", ["stats"]) => {
            ok(serde_json::to_value(sim.stats.snapshot()).expect("stats serialise"))
        }
        ("GET", ["invitations"]) => {
            ok(json!({"value": sim.world.lock().expect("world lock").invitations}))
        }
        ("GET", ["outbound-mail"]) => {
            ok(json!({"value": sim.world.lock().expect("world lock").outbound_mail}))
        }
        ("GET", ["subscriptions"]) => ok(json!({"value": sim.subscriptions.list()})),
        ("GET", ["calendar-view"]) => {
            let (Some(user), Some(start), Some(end)) =
                (req.query("user"), req.query("start"), req.query("end"))
            else {
                return bad("user, start and end are required");
            };
            let world = sim.world.lock().expect("world lock");
            let Some((t, u)) = find_user(&world, user) else {
                return bad(format!("no user '{user}'"));
            };
            match super::calendar::view_ids(&world, t, u, start, end) {
                Ok(ids) => ok(json!({"ids": ids})),
                Err(e) => bad(e),
            }
        }
        ("POST", ["deliver"]) => {
            deliver(&mut sim.world.lock().expect("world lock"), body!(Deliver))
        }
        ("POST", ["messages", op @ ("move" | "delete" | "update")]) => message_op(
            &mut sim.world.lock().expect("world lock"),
            op,
            body!(MessageRef),
        ),
        ("POST", ["events", rest @ ..]) => {
            let v = body!(Value);
            let mut world = sim.world.lock().expect("world lock");
            let op = rest.first().copied().unwrap_or("create");
            super::calendar::control(&mut world, op, &v)
                .map(ok)
                .unwrap_or_else(bad)
        }
        ("POST", ["tokens", "expire"]) | ("POST", ["refresh-tokens", "expire"]) => {
            let a = body!(TenantArg);
            let mut world = sim.world.lock().expect("world lock");
            match tenant_filter(&world, a.tenant.as_deref()) {
                Err(r) => r,
                Ok(ts) => {
                    // Tokens carry the sequence they were issued at; everything issued so far
                    // falls below the line.
                    let line = world.bump();
                    for t in ts {
                        if path[0] == "tokens" {
                            world.tenants[t].access_tokens_min_seq = line;
                        } else {
                            world.tenants[t].refresh_tokens_min_seq = line;
                        }
                    }
                    ok(json!({"ok": true}))
                }
            }
        }
        ("POST", ["secrets", op @ ("revoke" | "add" | "expire")]) => {
            let a = body!(TenantArg);
            let mut world = sim.world.lock().expect("world lock");
            let Some(t) = a.tenant.as_deref().and_then(|k| world.tenant_by_key(k)) else {
                return bad("tenant is required and must exist");
            };
            let seq = world.bump();
            let Some(app) = world.tenants[t].app_mut(a.client_id.as_deref().unwrap_or_default())
            else {
                return bad("no such client_id in that tenant");
            };
            if *op == "expire" {
                // The secret stays registered but is past its end date: AADSTS7000222.
                let Some(s) = app
                    .secrets
                    .iter_mut()
                    .find(|s| Some(&s.value) == a.secret.as_ref())
                else {
                    return bad("no such secret");
                };
                s.expires_at = Some(Utc::now().timestamp() - 1);
                ok(json!({"ok": true}))
            } else if *op == "revoke" {
                let before = app.secrets.len();
                app.secrets.retain(|s| Some(&s.value) != a.secret.as_ref());
                if app.secrets.len() == before {
                    return bad("no such secret");
                }
                ok(json!({"ok": true}))
            } else {
                let secret = format!(
                    "sim~added{}",
                    super::ids::Rng::new(seq).guid().replace('-', "")
                );
                app.secrets.push(super::model::AppSecret {
                    value: secret.clone(),
                    expires_at: None,
                });
                ok(json!({"secret": secret}))
            }
        }
        ("POST", ["sync-state", "expire"]) => {
            let a = body!(TenantArg);
            let mut world = sim.world.lock().expect("world lock");
            match tenant_filter(&world, a.tenant.as_deref()) {
                Err(r) => r,
                Ok(ts) => {
                    for t in ts {
                        for user in world.tenants[t].users.iter_mut() {
                            if a.user
                                .as_deref()
                                .is_none_or(|w| w.eq_ignore_ascii_case(&user.upn) || w == user.id)
                            {
                                user.sync_generation += 1;
                            }
                        }
                    }
                    ok(json!({"ok": true}))
                }
            }
        }
        ("POST", ["subscriptions", "lifecycle"]) => {
            #[derive(Deserialize)]
            struct L {
                id: String,
                event: String,
            }
            let l = body!(L);
            match sim.subscriptions.lifecycle(&l.id, &l.event) {
                Ok(()) => ok(json!({"ok": true})),
                Err(e) => bad(e),
            }
        }
        ("GET", ["throttle"]) => {
            ok(serde_json::to_value(sim.throttle.config()).expect("config serialises"))
        }
        ("PUT", ["throttle"]) => {
            let c = body!(ThrottleConfig);
            sim.throttle.set_config(c.clone());
            ok(serde_json::to_value(c).expect("config serialises"))
        }
        ("GET", ["faults"]) => ok(serde_json::to_value(sim.faults()).expect("config serialises")),
        ("PUT", ["faults"]) => {
            let f = body!(FaultConfig);
            if let Err(e) = f.validate() {
                return bad(e);
            }
            sim.set_faults(f.clone());
            ok(serde_json::to_value(f).expect("config serialises"))
        }
        ("GET", ["protocol"]) => {
            ok(serde_json::to_value(sim.protocol()).expect("config serialises"))
        }
        ("PUT", ["protocol"]) => {
            let p = body!(super::config::ProtocolConfig);
            sim.set_protocol(p.clone());
            ok(serde_json::to_value(p).expect("config serialises"))
        }
        ("POST", ["reset"]) => {
            sim.reset();
            ok(json!({"ok": true}))
        }
        _ => SimResponse::json(
            404,
            &json!({"error": format!("no control endpoint {method} /_sim/{}", path.join("/"))}),
        ),
    };
    let changes = std::mem::take(&mut sim.world.lock().expect("world lock").pending_changes);
    sim.subscriptions.enqueue(sim, changes);
    response
}
