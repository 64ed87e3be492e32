//! Every route of the admin API against every kind of token, on SQLite and PostgreSQL (issue
//! 16): the scope each route's table entry declares ([`m365sync::service::route_access`]) is
//! the scope it enforces. Two orgs, acme (with [`world`]'s synced mail) and globex; four tokens
//! (the service admin, each org's admin, a user of acme). Each route's path is filled with
//! acme's real org, tenant, mailbox and record ids, and then:
//! - a token that is not the route's gets the route's refusal: 401 without a token, 403 for the
//!   wrong role (a user on an admin route, an admin on a user's `/api/me` route, an org admin
//!   on a service-admin route), and for globex's admin on acme's org or record, 404 worded
//!   exactly as for an org or record that does not exist, so it learns nothing of acme;
//! - the route's own tokens get neither a refusal (401, 403, a scope's 404) nor a 500. Bodies
//!   are empty: a 400 for a missing body is fine here, the test is about scope, not payloads,
//!   and it keeps the test from changing state (a `DELETE` acts on a record made for it).
//!
//! A route added to the table is covered without a line here, unless its path names a
//! parameter [`key_of`] does not know, which fails the test by name.

use std::collections::BTreeMap;

use m365sync::service::{route_access, Access};
use reqwest::Method;
use serde_json::{json, Value};

use crate::matching::world;
use crate::roles::{globex, serve, Api, ADMIN};
use crate::support::TestDb;

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Nobody,
    Service,
    AcmeAdmin,
    GlobexAdmin,
    AcmeUser,
}

impl Who {
    const ALL: [Who; 5] = [
        Who::Nobody,
        Who::Service,
        Who::AcmeAdmin,
        Who::GlobexAdmin,
        Who::AcmeUser,
    ];
}

/// The records of acme the paths are filled with, and the tokens.
struct Fixture {
    api: Api,
    tokens: BTreeMap<&'static str, String>,
    /// Values by key (see [`key_of`]).
    values: BTreeMap<&'static str, String>,
    alice: String,
}

/// Which record a path parameter names on that path: `{id}` is a run under `/api/runs`, an
/// outbox row under `/mail`; `{rule}` an org's, a tenant's or a user's rule...
fn key_of(path: &str, param: &str) -> &'static str {
    match param {
        "org" => "org",
        "tenant" => "tenant",
        "address" | "email" | "user" => "alice",
        "contact" => "contact",
        "entity" => "entity",
        "slot" => "slot",
        "name" => "asset",
        "token" => "token",
        "id" if path.starts_with("/api/runs/") => "run",
        "id" if path.starts_with("/api/me/mail/") => "my_mail",
        "id" if path.contains("/mail/") => "mail",
        "rule" if path.starts_with("/api/me/") => "my_rule",
        "rule" if path.contains("/users/") => "user_rule",
        "rule" if path.contains("/tenants/") => "tenant_rule",
        "rule" => "org_rule",
        "event" if path.starts_with("/api/me/") => "my_event",
        "event" => "tenant_event",
        other => {
            panic!("{path}: the scope test does not know the parameter {{{other}}}; teach key_of")
        }
    }
}

/// The path's parameters, in order.
fn params(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect()
}

/// What stands for a record nobody has, per key: globex's admin must get the same answer for
/// acme's records as for these.
fn missing(key: &str) -> String {
    match key {
        "org" => "nosuch".into(),
        "tenant" => "nosuch".into(),
        "alice" => "nobody@nowhere.example".into(),
        "slot" => "matching".into(),
        "asset" => "app.js".into(),
        _ => "987654321".into(),
    }
}

impl Fixture {
    fn token(&self, who: Who) -> Option<&str> {
        match who {
            Who::Nobody => None,
            Who::Service => Some(ADMIN),
            Who::AcmeAdmin => Some(&self.tokens["acme"]),
            Who::GlobexAdmin => Some(&self.tokens["globex"]),
            Who::AcmeUser => Some(&self.tokens["alice"]),
        }
    }

    /// A new record for `key`, made by the service admin (or the user, for their own), for a
    /// `DELETE` to remove; `None` for keys whose records a delete does not remove.
    async fn fresh(&self, key: &str) -> Option<String> {
        static MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (path, token, body) = match key {
            "contact" => (
                "/api/orgs/acme/contacts".to_string(),
                ADMIN,
                json!({"name": format!("Fresh {n}")}),
            ),
            "entity" => (
                "/api/orgs/acme/entities".to_string(),
                ADMIN,
                json!({"name": format!("Fresh {n}"), "kind": "company"}),
            ),
            "org_rule" => (
                "/api/orgs/acme/rules".to_string(),
                ADMIN,
                json!({"effect": "exclude", "target": "sender", "pattern": "*@fresh.example"}),
            ),
            "tenant_rule" => (
                "/api/orgs/acme/tenants/main/rules".to_string(),
                ADMIN,
                json!({"effect": "exclude", "target": "sender", "pattern": "*@fresh.example"}),
            ),
            "user_rule" => (
                format!("/api/orgs/acme/tenants/main/users/{}/rules", self.alice),
                ADMIN,
                json!({"effect": "exclude", "target": "sender", "pattern": "*@fresh.example"}),
            ),
            "my_rule" => (
                "/api/me/rules".to_string(),
                self.tokens["alice"].as_str(),
                json!({"effect": "exclude", "target": "sender", "pattern": "*@fresh.example"}),
            ),
            "token" => (
                "/api/orgs/acme/tokens".to_string(),
                ADMIN,
                json!({"tenant": "main", "user": self.alice}),
            ),
            "tenant_event" => (
                format!("/api/orgs/acme/tenants/main/users/{}/events", self.alice),
                ADMIN,
                event(),
            ),
            "my_event" => (
                "/api/me/events".to_string(),
                self.tokens["alice"].as_str(),
                event(),
            ),
            _ => return None,
        };
        let (st, made) = self
            .api
            .call(Method::POST, &path, Some(token), Some(body))
            .await;
        assert!(st == 201 || st == 200, "{path}: {st} {made}");
        Some(made["id"].to_string())
    }

    /// The path filled with acme's records (`values`), or with records nobody has.
    fn fill(&self, path: &str, acme: bool) -> String {
        let mut out = path.to_string();
        for p in params(path) {
            let key = key_of(path, p);
            let v = if acme {
                self.values
                    .get(key)
                    .unwrap_or_else(|| panic!("{path}: no value for {key}"))
                    .clone()
            } else {
                missing(key)
            };
            out = out.replace(&format!("{{{p}}}"), &v);
        }
        out
    }
}

/// A one-hour event in a week, its invitations not sent.
fn event() -> Value {
    let d = chrono::Utc::now().date_naive() + chrono::Duration::days(7);
    json!({"subject": "Scope test", "start": format!("{d}T09:00:00Z"), "end": format!("{d}T10:00:00Z")})
}

/// `body` with each of the path's values replaced by its parameter's name, so answers about
/// different records can be compared word for word.
fn neutral(body: &Value, path: &str, filled: &str) -> String {
    let mut text = body.to_string();
    let template: Vec<&str> = path.split('/').collect();
    let mut pairs: Vec<(&str, &str)> = template
        .iter()
        .zip(filled.split('/'))
        .filter(|(t, _)| t.starts_with('{'))
        .map(|(t, v)| (*t, v))
        .collect();
    // Longest value first, so "main" inside an address is not replaced before the address.
    pairs.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
    for (t, v) in pairs {
        text = replace_word(&text, v, t);
    }
    text
}

/// `text` with each occurrence of `word` that is not part of a longer word or number replaced
/// (a record id `3` must not turn `m365sync` into `m{rule}65sync`).
fn replace_word(text: &str, word: &str, with: &str) -> String {
    let part = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(word) {
        let before = rest[..i].chars().next_back().or(out.chars().next_back());
        let after = rest[i + word.len()..].chars().next();
        out.push_str(&rest[..i]);
        if part(before) || part(after) {
            out.push_str(word);
        } else {
            out.push_str(with);
        }
        rest = &rest[i + word.len()..];
    }
    out.push_str(rest);
    out
}

/// The tokens that are the route's own.
fn allowed(access: Access, who: Who) -> bool {
    match access {
        Access::Open => true,
        Access::ServiceAdmin => who == Who::Service,
        Access::OrgAdmin => matches!(who, Who::Service | Who::AcmeAdmin),
        Access::User => who == Who::AcmeUser,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_each_token_as_its_scope_says_on_both_databases() {
    for db in TestDb::both().await {
        let w = world(&db).await;
        globex(&db).await;
        let (service, handle, api) = serve(&db).await;
        let mut tokens = BTreeMap::new();
        tokens.insert("acme", api.token("acme", json!({})).await);
        tokens.insert("globex", api.token("globex", json!({})).await);
        tokens.insert(
            "alice",
            api.token("acme", json!({"tenant": "main", "user": w.alice}))
                .await,
        );
        let runs = db.store.runs(w.tenant.id, 1).await.unwrap();
        let mut f = Fixture {
            api,
            tokens,
            values: BTreeMap::new(),
            alice: w.alice.clone(),
        };
        for (k, v) in [
            ("org", "acme".to_string()),
            ("tenant", "main".to_string()),
            ("alice", w.alice.clone()),
            ("contact", w.pat.to_string()),
            // Matching has no shadows: the shadow route answers 400 past its scope, not a 404 for
            // a shadow this store has not run.
            ("slot", "matching".to_string()),
            ("asset", "app.js".to_string()),
            ("run", runs[0].id.to_string()),
        ] {
            f.values.insert(k, v);
        }
        for key in [
            "entity",
            "org_rule",
            "tenant_rule",
            "user_rule",
            "my_rule",
            "token",
            "tenant_event",
            "my_event",
        ] {
            let id = f.fresh(key).await.unwrap();
            f.values.insert(key, id);
        }
        // An email from the CRM, from alice's mailbox: an outbox row of the tenant and hers.
        let (st, row) = f
            .api
            .call(
                Method::POST,
                "/api/me/mail",
                f.token(Who::AcmeUser),
                Some(json!({"to": ["pat@client.example"], "subject": "Scope test", "body": "hi"})),
            )
            .await;
        assert_eq!(st, 202, "{row}");
        f.values.insert("mail", row["id"].to_string());
        f.values.insert("my_mail", row["id"].to_string());
        // What of acme globex's admin must never read.
        let secrets_of_acme = [
            w.alice.as_str(),
            w.bob.as_str(),
            "Pat Client",
            "pat@client.example",
            "stranger@nowhere.example",
        ];

        let routes = route_access();
        assert!(routes.len() > 70, "{}", routes.len());
        // Every wrong answer, so one run names them all.
        let mut wrong: Vec<String> = Vec::new();
        let mut expect = |ok: bool, said: &str| {
            if !ok {
                wrong.push(said.to_string());
            }
        };
        let mut checked = 0;
        for (method, path, access) in &routes {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            let keys: Vec<&str> = params(path).iter().map(|p| key_of(path, p)).collect();
            for who in Who::ALL {
                let own = allowed(*access, who);
                // A delete acts on a record made for it, so each of the route's own tokens
                // finds one to remove.
                let mut url = f.fill(path, true);
                if own && method == Method::DELETE && who != Who::Nobody {
                    if let Some(key) = keys.last() {
                        if let Some(id) = f.fresh(key).await {
                            let template = path.rsplit_once('/').unwrap().0;
                            url = format!("{}/{id}", f.fill(template, true));
                        }
                    }
                }
                // Signing in to the console takes the token in the body; every other route
                // gets none.
                let sign_in = (path == "/session" && method == Method::POST)
                    .then(|| f.token(who).map(|t| json!({ "token": t })))
                    .flatten();
                let (st, body) = f
                    .api
                    .call(method.clone(), &url, f.token(who), sign_in)
                    .await;
                let said = format!("{method} {url} as {who:?} ({access:?}): {st} {body}");
                checked += 1;
                expect(st != 500 && st != 405, &said);
                if own {
                    // The route's own token: never refused. (`/session` answers 401 to nobody
                    // signed in, or signing in: that is its answer, not a refusal.)
                    let session = path == "/session" && method != Method::DELETE;
                    if !(session && who == Who::Nobody) {
                        expect(![401, 403, 404].contains(&st), &said);
                    }
                    continue;
                }
                match who {
                    Who::Nobody => expect(st == 401, &said),
                    Who::GlobexAdmin if *access == Access::OrgAdmin && !keys.is_empty() => {
                        // Another org's records: 404, worded as for records that do not
                        // exist, so globex cannot tell acme's from nobody's.
                        let elsewhere = f.fill(path, false);
                        let (st2, body2) = f
                            .api
                            .call(method.clone(), &elsewhere, f.token(who), None)
                            .await;
                        expect(
                            st == 404
                                && st2 == 404
                                && neutral(&body, path, &url) == neutral(&body2, path, &elsewhere),
                            &format!("{said}; for a missing record: {st2} {body2}"),
                        );
                    }
                    Who::GlobexAdmin if *access == Access::OrgAdmin => {
                        // A listing without an org in its path: globex's own.
                        expect(st < 400 && !body.to_string().contains("acme"), &said);
                    }
                    // The wrong role: a user on an admin route, an admin on a user's route,
                    // an org admin on the service admin's.
                    _ => expect(st == 403, &said),
                }
                if who == Who::GlobexAdmin {
                    // Whatever globex's admin is answered names nothing of acme's.
                    let text = body.to_string();
                    expect(!secrets_of_acme.iter().any(|s| text.contains(s)), &said);
                }
            }
        }
        assert_eq!(checked, routes.len() * Who::ALL.len());
        assert!(
            wrong.is_empty(),
            "{} wrong answers on {}:\n{}",
            wrong.len(),
            db.url,
            wrong.join("\n")
        );

        handle.stop();
        service.wait().await;
        db.drop_db().await;
    }
}
