//! Calendar sync through the admin API (issue 6), over real HTTP against the running service
//! and the simulator, on SQLite and PostgreSQL: settings per org and tenant with validation and
//! C9's warning, a user's Sync Events switch, CRM events created, listed, changed and deleted
//! by an org admin and by users on their own calendar only. The service pushes each edit by
//! itself (the API makes the tenant's run due), and the simulator's invitation log shows
//! exactly one message per attendee per intended change; imported events are never pushed.

use std::time::Duration;

use m365sync::service::{Service, ServiceOptions};
use m365sync::sync::stop::{stop_pair, StopHandle};
use m365sync_sim::generate::GenerateOptions;
use m365sync_store::events::Direction;
use m365sync_store::tenants::{AuthMode, NewTenant};
use reqwest::Method;
use serde_json::{json, Value};

use crate::calendar_support::{declare, invitations, ms, people, settings, view, window, Cal};
use crate::roles::{Api, ADMIN};
use crate::support::{small, TestDb, TestSim};
use crate::sync_email::env;

const CLIENT: &str = "client@acme-holdings.example";

fn future(days: i64, hour: u32) -> String {
    let d = chrono::Utc::now().date_naive() + chrono::Duration::days(days);
    format!("{d}T{hour:02}:00:00Z")
}

fn day(days: i64) -> String {
    (chrono::Utc::now().date_naive() + chrono::Duration::days(days)).to_string()
}

/// The simulator's tenant declared with `calendar` settings and activated, and the service
/// running over it with a fast tick.
async fn start(
    db: &TestDb,
    f: impl FnOnce(&mut m365sync_store::events::CalendarSettings),
) -> (TestSim, Cal, Service, StopHandle, Api) {
    let s = TestSim::start(GenerateOptions {
        events: 0,
        ..small()
    })
    .await;
    let cal = declare(db, &s, &settings(f)).await;
    db.store.activate_tenant(cal.tenant.id).await.unwrap();
    let (handle, stop) = stop_pair();
    let mut opts = ServiceOptions::new(Some("127.0.0.1:0".parse().unwrap()), ADMIN.into());
    opts.workers = 2;
    opts.poll = Duration::from_millis(200);
    let service = Service::start(env(&db.store), opts, stop).await.unwrap();
    let api = Api {
        base: format!("http://{}", service.admin_addr.unwrap()),
        http: reqwest::Client::new(),
    };
    (s, cal, service, handle, api)
}

/// `upn`'s events in Microsoft: (subject, location).
async fn in_microsoft(s: &TestSim, upn: &str) -> Vec<(String, String)> {
    let (start, end) = window();
    view(s, upn, &start, &end)
        .await
        .iter()
        .map(|e| {
            (
                e["subject"].as_str().unwrap_or_default().to_string(),
                e["location"]["displayName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

/// Waits up to 30 s until `upn`'s calendar in Microsoft has an event `subject` (at `location`,
/// when given), or with `present` false, has none.
async fn wait_in_microsoft(
    s: &TestSim,
    upn: &str,
    subject: &str,
    location: Option<&str>,
    present: bool,
) {
    for _ in 0..150 {
        let found = in_microsoft(s, upn)
            .await
            .iter()
            .any(|(sub, loc)| sub == subject && location.is_none_or(|l| l == loc));
        if found == present {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "the service did not {} '{subject}' in {upn}'s calendar within 30 s",
        if present { "push" } else { "delete" }
    );
}

fn has(events: &[(String, String)], subject: &str) -> bool {
    events.iter().any(|(s, _)| s == subject)
}

async fn count(s: &TestSim, kind: &str, subject: &str) -> usize {
    invitations(s)
        .await
        .iter()
        .filter(|(k, _, sub)| k == kind && sub == subject)
        .count()
}

fn error_of(body: &Value) -> String {
    body["error"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn org_admins_set_calendar_settings_and_their_event_edits_reach_microsoft() {
    for db in TestDb::both().await {
        let (s, cal, service, handle, api) = start(&db, |_| {}).await;
        let me = people(&s)[0].clone();
        let other = people(&s)[1].clone();
        // Another tenant of acme and another org, whose paths must not reach acme's events.
        let spare = |org: &str, name: &str| NewTenant {
            org: org.into(),
            name: name.into(),
            ms_tenant: format!("{org}-{name}.example"),
            authority: "http://127.0.0.1:9".into(),
            graph_url: "http://127.0.0.1:9/v1.0".into(),
            client_id: org.into(),
            auth_mode: AuthMode::App,
        };
        db.store
            .upsert_tenant(&spare("acme", "other"))
            .await
            .unwrap();
        db.store
            .upsert_tenant(&spare("globex", "eu"))
            .await
            .unwrap();
        let acme = api.token("acme", json!({})).await;
        let globex = api.token("globex", json!({})).await;
        let call = |method: Method, path: String, body: Option<Value>| {
            let (api, acme) = (&api, &acme);
            async move {
                api.call(method, &format!("/api/orgs/acme{path}"), Some(acme), body)
                    .await
            }
        };

        // Settings: the org's defaults, then a two-way default with C9's warning and a date.
        let (st, org) = call(Method::GET, "/calendar/settings".into(), None).await;
        assert_eq!(st, 200, "{org}");
        assert_eq!(
            (org["from"].as_str(), org["settings"]["direction"].as_str()),
            (Some("default"), Some("to_crm"))
        );
        let (st, org) = call(
            Method::PUT,
            "/calendar/settings".into(),
            Some(json!({"direction": "two_way", "commencement": "2026-01-01"})),
        )
        .await;
        assert_eq!(st, 200, "{org}");
        assert_eq!(org["from"], "org");
        assert_eq!(
            org["settings"]["commencement_ms"].as_i64(),
            Some(ms("2026-01-01T00:00:00Z"))
        );
        let warnings = org["warnings"].as_array().unwrap();
        assert!(
            warnings.len() == 1 && warnings[0].as_str().unwrap().contains("invitations"),
            "C9: {org}"
        );
        let (_, org) = call(
            Method::PUT,
            "/calendar/settings".into(),
            Some(json!({"direction": "to_crm"})),
        )
        .await;
        assert_eq!(org["warnings"], json!([]), "{org}");
        assert_eq!(
            org["settings"]["commencement_ms"].as_i64(),
            Some(ms("2026-01-01T00:00:00Z")),
            "fields left out keep their value"
        );
        // The tenant's own row (declared) overrides the org's; bad values are refused whole.
        let tenant_settings = "/tenants/main/calendar/settings".to_string();
        let (st, before) = call(Method::GET, tenant_settings.clone(), None).await;
        assert_eq!((st, before["from"].as_str()), (200, Some("tenant")));
        for (body, needle) in [
            (json!({"inbound_years": 99}), "0 to 50"),
            (json!({"outbound_months": -1}), "0 to 600"),
            (json!({"direction": "sideways"}), "sideways"),
            (json!({"direction": "two_way", "colour": "red"}), "colour"),
            (
                json!({"commencement": "2026-01-01", "commencement_ms": 0}),
                "not both",
            ),
        ] {
            let (st, refused) = call(Method::PUT, tenant_settings.clone(), Some(body)).await;
            assert_eq!(st, 400, "{refused}");
            assert!(error_of(&refused).contains(needle), "{refused}");
        }
        let (_, unchanged) = call(Method::GET, tenant_settings.clone(), None).await;
        assert_eq!(unchanged, before, "a refused change writes nothing");
        let (st, put) = call(
            Method::PUT,
            tenant_settings.clone(),
            Some(json!({"direction": "two-way", "delete_from_crm": true})),
        )
        .await;
        assert_eq!(st, 200, "{put}");
        assert!(
            put["warnings"][0]
                .as_str()
                .unwrap()
                .contains("calendar direction is two_way"),
            "{put}"
        );
        let (_, got) = call(Method::GET, tenant_settings.clone(), None).await;
        assert_eq!(got["settings"], put["settings"]);
        assert_eq!(got["settings"]["delete_from_crm"], true);
        // What GET answers can be sent back as it is.
        let (st, again) = call(
            Method::PUT,
            tenant_settings.clone(),
            Some(got["settings"].clone()),
        )
        .await;
        assert_eq!((st, &again["settings"]), (200, &got["settings"]), "{again}");
        let applied = db
            .store
            .calendar_settings(cal.tenant.org_id, cal.tenant.id)
            .await
            .unwrap();
        assert_eq!(
            (applied.direction, applied.delete_from_crm),
            (Direction::TwoWay, true)
        );

        // Sync Events off: the user's events are stored and their changes wait for the switch.
        let switch = format!("/tenants/main/users/{other}/sync-events");
        let (st, body) = call(Method::PUT, switch.clone(), Some(json!({"on": false}))).await;
        assert_eq!((st, &body["sync_events"]), (200, &json!(false)), "{body}");
        assert!(
            !db.store
                .calendar_user(
                    db.store
                        .user_id(cal.tenant.id, &other)
                        .await
                        .unwrap()
                        .unwrap()
                )
                .await
                .unwrap()
                .sync_events
        );
        let (st, _) = call(
            Method::PUT,
            "/tenants/main/users/nobody@contoso.example/sync-events".into(),
            Some(json!({"on": true})),
        )
        .await;
        assert_eq!(st, 404);
        let (st, parked) = call(
            Method::POST,
            format!("/tenants/main/users/{other}/events"),
            Some(json!({"subject": "Not synced", "start": future(2, 9), "end": future(2, 10)})),
        )
        .await;
        assert_eq!(
            (st, parked["queued"].as_bool()),
            (201, Some(false)),
            "{parked}"
        );
        // Not lost: it waits for the user's Sync Events, and says so (C2).
        assert_eq!(
            (
                parked["push"]["state"].as_str(),
                parked["push"]["message"].as_str()
            ),
            (
                Some("waiting"),
                Some(
                    format!("waiting: Sync Events is off for {other} — turn it on to send")
                        .as_str()
                )
            ),
            "{parked}"
        );

        // A new event with invitations: the service pushes it, one invitation goes out.
        let events = format!("/tenants/main/users/{me}/events");
        let (st, created) = call(
            Method::POST,
            events.clone(),
            Some(json!({
                "subject": "Annual review",
                "start": future(3, 9),
                "end": future(3, 10),
                "location": "Board room",
                "required": [format!("Client <{CLIENT}>")],
                "send_invitations": true,
            })),
        )
        .await;
        assert_eq!(st, 201, "{created}");
        assert_eq!(
            (
                created["user"].as_str(),
                created["queued"].as_bool(),
                created["sync_status"].as_str()
            ),
            (Some(me.as_str()), Some(true), Some("never"))
        );
        let event = format!("/tenants/main/events/{}", created["id"]);
        wait_in_microsoft(&s, &me, "Annual review", Some("Board room"), true).await;
        let mut recorded = Value::Null;
        for _ in 0..50 {
            recorded = call(Method::GET, event.clone(), None).await.1;
            if recorded["queued"] == false {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(
            (
                recorded["in_microsoft"].as_bool(),
                recorded["queued"].as_bool(),
                recorded["sync_status"].as_str()
            ),
            (Some(true), Some(false), Some("active")),
            "the push is recorded: {recorded}"
        );
        // C8: the External ID Microsoft gave it, in the record and beside it.
        assert_eq!(recorded["push"]["message"], "sent", "{recorded}");
        assert!(
            recorded["external_id"]
                .as_str()
                .is_some_and(|id| !id.is_empty())
                && recorded["record"]["external_id"] == recorded["external_id"],
            "{recorded}"
        );
        assert_eq!(count(&s, "invitation", "Annual review").await, 1);
        // An imported event: stored, never queued, never pushed.
        let (st, imported) = call(
            Method::POST,
            events.clone(),
            Some(json!({
                "subject": "Imported meeting",
                "start": future(5, 9),
                "end": future(5, 10),
                "required": [CLIENT],
                "imported": true,
                "send_invitations": true,
            })),
        )
        .await;
        assert_eq!(
            (
                st,
                imported["queued"].as_bool(),
                imported["imported"].as_bool()
            ),
            (201, Some(false), Some(true)),
            "{imported}"
        );
        // Bad input: 400 naming the field, the user and the tenant.
        for (body, needle) in [
            (
                json!({"subject": "X", "start": "tomorrow", "end": future(3, 10)}),
                "start 'tomorrow'",
            ),
            (
                json!({"subject": "X", "start": future(3, 9), "end": future(3, 10), "required": ["nobody"]}),
                "attendee 'nobody'",
            ),
            (
                json!({"subject": "X", "start": future(3, 10), "end": future(3, 9)}),
                "ends",
            ),
            (
                json!({"start": future(3, 9), "end": future(3, 10)}),
                "subject",
            ),
            (
                json!({"subject": "X", "start": future(3, 9), "end": future(3, 10), "colour": "red"}),
                "colour",
            ),
        ] {
            let (st, refused) = call(Method::POST, events.clone(), Some(body)).await;
            assert_eq!(st, 400, "{refused}");
            assert!(error_of(&refused).contains(needle), "{needle}: {refused}");
        }
        let (st, refused) = call(
            Method::POST,
            "/tenants/main/users/nobody@contoso.example/events".into(),
            Some(json!({"subject": "X", "start": future(3, 9), "end": future(3, 10)})),
        )
        .await;
        assert_eq!(st, 400, "{refused}");
        let message = error_of(&refused);
        assert!(
            message.contains("nobody@contoso.example") && message.contains("main"),
            "{refused}"
        );

        // The user's events by start, a page at a time, within a window.
        let (st, page) = call(Method::GET, format!("{events}?limit=1"), None).await;
        assert_eq!(st, 200, "{page}");
        assert_eq!(page["items"][0]["subject"], "Annual review");
        let next = page["next"].as_str().unwrap().to_string();
        let (_, rest) = call(Method::GET, format!("{events}?limit=1&after={next}"), None).await;
        assert_eq!(rest["items"][0]["subject"], "Imported meeting", "{rest}");
        let (_, last) = call(
            Method::GET,
            format!("{events}?limit=1&after={}", rest["next"].as_str().unwrap()),
            None,
        )
        .await;
        assert_eq!(
            (last["items"].clone(), last["next"].clone()),
            (json!([]), Value::Null)
        );
        let (_, within) = call(
            Method::GET,
            format!("{events}?from={}&to={}", day(1), day(4)),
            None,
        )
        .await;
        let subjects: Vec<&str> = within["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["subject"].as_str().unwrap())
            .collect();
        assert_eq!(subjects, vec!["Annual review"]);

        // Other orgs and tenants: 404 for another org's admin (as for a missing org), 404 for
        // ids outside the path.
        assert_eq!(
            api.call(
                Method::GET,
                &format!("/api/orgs/acme{event}"),
                Some(&globex),
                None
            )
            .await
            .0,
            404
        );
        let id = created["id"].as_i64().unwrap();
        for (path, token) in [
            (format!("/api/orgs/globex/tenants/eu/events/{id}"), &globex),
            (format!("/api/orgs/acme/tenants/other/events/{id}"), &acme),
        ] {
            for method in [Method::GET, Method::DELETE] {
                let (st, body) = api.call(method, &path, Some(token), None).await;
                assert_eq!(st, 404, "{path}: {body}");
            }
            let (st, _) = api
                .call(
                    Method::PATCH,
                    &path,
                    Some(token),
                    Some(json!({"subject": "Hijacked"})),
                )
                .await;
            assert_eq!(st, 404, "{path}");
        }

        // A change: only the subject goes, one update to the attendee.
        let (st, refused) = call(Method::PATCH, event.clone(), Some(json!({}))).await;
        assert_eq!(st, 400, "{refused}");
        assert!(error_of(&refused).contains("nothing to change"));
        let (st, refused) = call(
            Method::PATCH,
            event.clone(),
            Some(json!({"end": "next week"})),
        )
        .await;
        assert!(
            st == 400 && error_of(&refused).contains("end 'next week'"),
            "{refused}"
        );
        let (st, changed) = call(
            Method::PATCH,
            event.clone(),
            Some(json!({"subject": "Annual review (moved)"})),
        )
        .await;
        assert_eq!(st, 200, "{changed}");
        assert_eq!(
            (
                changed["queued"].as_bool(),
                changed["record"]["location"].as_str()
            ),
            (Some(true), Some("Board room")),
            "{changed}"
        );
        wait_in_microsoft(&s, &me, "Annual review (moved)", None, true).await;
        assert_eq!(count(&s, "update", "Annual review (moved)").await, 1);

        // A delete: removed in Microsoft (deletes from the CRM are on), one cancellation.
        let (st, removed) = call(Method::DELETE, event.clone(), None).await;
        assert_eq!(
            (st, removed["queued"].as_bool()),
            (200, Some(true)),
            "{removed}"
        );
        wait_in_microsoft(&s, &me, "Annual review (moved)", None, false).await;
        assert_eq!(call(Method::GET, event.clone(), None).await.0, 404);
        let log = invitations(&s).await;
        assert_eq!(log.len(), 3, "invitation, update, cancellation: {log:?}");
        assert_eq!(log[2].0, "cancellation");
        // After all those runs the imported and the parked events are still only ours.
        let theirs = in_microsoft(&s, &me).await;
        assert!(!has(&theirs, "Imported meeting"), "{theirs:?}");
        assert!(!has(&in_microsoft(&s, &other).await, "Not synced"));
        let (_, imported) = call(
            Method::GET,
            format!("/tenants/main/events/{}", imported["id"]),
            None,
        )
        .await;
        assert_eq!(
            (
                imported["sync_status"].as_str(),
                imported["in_microsoft"].as_bool()
            ),
            (Some("never"), Some(false))
        );

        handle.stop();
        service.wait().await;
        db.drop_db().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_edit_only_their_own_events_and_the_service_pushes_them() {
    for db in TestDb::both().await {
        let (s, _cal, service, handle, api) = start(&db, |c| {
            c.direction = Direction::TwoWay;
            c.delete_from_crm = true;
        })
        .await;
        let people = people(&s);
        let (alice_upn, bob_upn) = (people[0].clone(), people[1].clone());
        let mut tokens = Vec::new();
        for user in [&alice_upn, &bob_upn] {
            tokens.push(
                api.token("acme", json!({"tenant": "main", "user": user}))
                    .await,
            );
        }
        let (alice, bob) = (tokens[0].as_str(), tokens[1].as_str());

        let (st, coffee) = api
            .call(
                Method::POST,
                "/api/me/events",
                Some(alice),
                Some(json!({
                    "subject": "Coffee",
                    "start": future(2, 8),
                    "end": future(2, 9),
                    "required": [CLIENT],
                    "send_invitations": true,
                })),
            )
            .await;
        assert_eq!(st, 201, "{coffee}");
        assert_eq!(coffee["user"].as_str(), Some(alice_upn.as_str()));
        let (st, lunch) = api
            .call(
                Method::POST,
                "/api/me/events",
                Some(bob),
                Some(
                    json!({"subject": "Bob's lunch", "start": future(2, 12), "end": future(2, 13)}),
                ),
            )
            .await;
        assert_eq!(st, 201, "{lunch}");
        let (_, mine) = api
            .call(Method::GET, "/api/me/events", Some(alice), None)
            .await;
        let subjects: Vec<&str> = mine["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["subject"].as_str().unwrap())
            .collect();
        assert_eq!(subjects, vec!["Coffee"], "{mine}");

        // Bob's event is not Alice's to read, change or delete: 404 as if it did not exist.
        let bobs = format!("/api/me/events/{}", lunch["id"]);
        for method in [Method::GET, Method::DELETE] {
            assert_eq!(api.call(method, &bobs, Some(alice), None).await.0, 404);
        }
        assert_eq!(
            api.call(
                Method::PATCH,
                &bobs,
                Some(alice),
                Some(json!({"subject": "Mine now"}))
            )
            .await
            .0,
            404
        );
        let (st, still) = api.call(Method::GET, &bobs, Some(bob), None).await;
        assert_eq!((st, still["subject"].as_str()), (200, Some("Bob's lunch")));
        // Users reach no admin endpoint; the admin has no "me".
        assert_eq!(
            api.call(
                Method::GET,
                "/api/orgs/acme/calendar/settings",
                Some(alice),
                None
            )
            .await
            .0,
            403
        );
        assert_eq!(
            api.call(Method::GET, "/api/me/events", Some(ADMIN), None)
                .await
                .0,
            403
        );

        // Alice's own edits reach her calendar in Microsoft.
        let own = format!("/api/me/events/{}", coffee["id"]);
        wait_in_microsoft(&s, &alice_upn, "Coffee", None, true).await;
        let (st, moved) = api
            .call(
                Method::PATCH,
                &own,
                Some(alice),
                Some(json!({"location": "Cafe"})),
            )
            .await;
        assert_eq!(st, 200, "{moved}");
        wait_in_microsoft(&s, &alice_upn, "Coffee", Some("Cafe"), true).await;
        assert_eq!(count(&s, "invitation", "Coffee").await, 1);
        assert_eq!(count(&s, "update", "Coffee").await, 1);
        // `null` clears the reminder (absent would leave it); Show Time As takes its words.
        let (st, set) = api
            .call(
                Method::PATCH,
                &own,
                Some(alice),
                Some(json!({"reminder_at": future(2, 7), "show_as": "out_of_office"})),
            )
            .await;
        assert_eq!(st, 200, "{set}");
        assert_eq!(
            set["record"]["reminder_at"].as_str(),
            Some(future(2, 7).as_str())
        );
        assert_eq!(set["record"]["show_time_as"], json!("OutOfOffice"), "{set}");
        let (st, cleared) = api
            .call(
                Method::PATCH,
                &own,
                Some(alice),
                Some(json!({"reminder_at": null})),
            )
            .await;
        assert_eq!(st, 200, "{cleared}");
        assert_eq!(cleared["record"]["reminder_set"], json!(false), "{cleared}");
        let (st, refused) = api
            .call(
                Method::PATCH,
                &own,
                Some(alice),
                Some(json!({"show_as": "maybe"})),
            )
            .await;
        assert_eq!(st, 400, "{refused}");
        assert!(error_of(&refused).contains("show_as"), "{refused}");
        assert_eq!(
            api.call(Method::DELETE, &own, Some(alice), None).await.0,
            200
        );
        wait_in_microsoft(&s, &alice_upn, "Coffee", None, false).await;
        assert!(has(&in_microsoft(&s, &bob_upn).await, "Bob's lunch"));

        handle.stop();
        service.wait().await;
        db.drop_db().await;
    }
}
