//! The `m365sync events` commands through the binary, on SQLite and PostgreSQL: settings per
//! org and tenant with their defaults, the Sync Events switch, CRM events added, listed,
//! changed, removed and deactivated, and `activate` warning about invitations (C9).

use m365sync_store::tenants::TenantSettings;

use crate::admin_support::Admin;
use crate::calendar_support::people;
use crate::support::{small, TestDb, TestSim};
use crate::sync_email::declare_with;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_commands_edit_settings_and_events_and_activate_warns() {
    for db in TestDb::both().await {
        let s = TestSim::start(m365sync_sim::generate::GenerateOptions {
            events: 0,
            ..small()
        })
        .await;
        let a = Admin::new(db).await;
        let (tenant, _) = declare_with(&a.store, &s, &TenantSettings::default()).await;
        let me = people(&s)[0].clone();
        let base = ["--org", "acme", "--tenant", "main"];
        let run = |args: Vec<&str>| {
            let mut all: Vec<&str> = vec!["events"];
            all.extend(args);
            all.iter().map(|s| s.to_string()).collect::<Vec<String>>()
        };
        let go = |v: Vec<String>| {
            let a = &a;
            async move {
                a.run(&v.iter().map(String::as_str).collect::<Vec<_>>())
                    .await
            }
        };

        // Defaults (C3, C4): Microsoft to CRM, 10 years in, 24 months out.
        let r = go(run([vec!["settings"], base.to_vec()].concat())).await;
        assert!(r.ok, "{}", r.all());
        let v = r.json();
        assert_eq!(
            (
                v["direction"].as_str(),
                v["inbound_years"].as_i64(),
                v["outbound_months"].as_i64()
            ),
            (Some("to_crm"), Some(10), Some(24))
        );
        // The org's two-way default applies to the tenant, with a warning about invitations.
        let r = go(run(vec![
            "settings",
            "--org",
            "acme",
            "--direction",
            "two-way",
            "--delete-from-crm",
            "on",
        ]))
        .await;
        assert!(r.ok && r.stderr.contains("invitations"), "{}", r.all());
        let r = go(run([vec!["settings"], base.to_vec()].concat())).await;
        assert_eq!(r.json()["direction"], "two_way");
        assert!(
            !go(run([
                vec!["settings", "--direction", "sideways"],
                base.to_vec()
            ]
            .concat()))
            .await
            .ok
        );
        let r = go(run([
            vec!["settings", "--inbound-years", "99"],
            base.to_vec(),
        ]
        .concat()))
        .await;
        assert!(!r.ok && r.all().contains("0 to 50"), "{}", r.all());

        let act = a
            .run(&["activate", "--org", "acme", "--tenant", "main", "--json"])
            .await;
        assert!(act.ok, "{}", act.all());
        assert!(
            act.stdout.contains("invitations"),
            "C9 warning: {}",
            act.all()
        );

        // Events.
        let start = (chrono::Utc::now() + chrono::Duration::days(3))
            .format("%Y-%m-%dT09:00:00Z")
            .to_string();
        let end = (chrono::Utc::now() + chrono::Duration::days(3))
            .format("%Y-%m-%dT10:00:00Z")
            .to_string();
        let r = go(run([
            vec![
                "add",
                "--user",
                &me,
                "--subject",
                "Review",
                "--start",
                &start,
                "--end",
                &end,
                "--attendee",
                "Client <client@acme-holdings.example>",
                "--send-invitations",
            ],
            base.to_vec(),
        ]
        .concat()))
        .await;
        assert!(
            r.ok && r.stdout.contains("created") && r.stdout.contains("queued for Microsoft"),
            "{}",
            r.all()
        );
        let r = go(run([
            vec![
                "add",
                "--user",
                "nobody@contoso.example",
                "--subject",
                "X",
                "--start",
                &start,
                "--end",
                &end,
            ],
            base.to_vec(),
        ]
        .concat()))
        .await;
        assert!(
            !r.ok && r.all().contains("no CRM user 'nobody@contoso.example'"),
            "{}",
            r.all()
        );
        let r = go(run([
            vec![
                "add",
                "--user",
                &me,
                "--subject",
                "Backwards",
                "--start",
                &end,
                "--end",
                &start,
            ],
            base.to_vec(),
        ]
        .concat()))
        .await;
        assert!(!r.ok && r.all().contains("ends"), "{}", r.all());
        let r = go(run([vec!["list", "--json"], base.to_vec()].concat())).await;
        let list = r.json();
        let id = list[0]["id"].as_i64().unwrap().to_string();
        assert_eq!(
            (list[0]["subject"].as_str(), list[0]["sync_status"].as_str()),
            (Some("Review"), Some("never"))
        );
        assert!(
            go(run([
                vec!["update", &id, "--subject", "Review (moved)"],
                base.to_vec()
            ]
            .concat()))
            .await
            .ok
        );
        let r = go(run([vec!["list"], base.to_vec()].concat())).await;
        assert!(r.stdout.contains("Review (moved)"), "{}", r.all());
        // The Sync Events switch off: edits are queued and wait, and say so (C2).
        assert!(
            go(run([
                vec!["sync-events", "--user", &me, "off"],
                base.to_vec()
            ]
            .concat()))
            .await
            .ok
        );
        let queued = a.store.outbox_len(tenant.id).await.unwrap();
        let waiting = format!("waiting: Sync Events is off for {me} — turn it on to send");
        let r = go(run([
            vec!["update", &id, "--location", "Board room"],
            base.to_vec(),
        ]
        .concat()))
        .await;
        assert!(r.ok && r.stdout.contains(&waiting), "{}", r.all());
        assert!(!r.stdout.contains("queued for Microsoft"), "{}", r.all());
        assert_eq!(a.store.outbox_len(tenant.id).await.unwrap(), queued + 1);
        let r = go(run([vec!["list"], base.to_vec()].concat())).await;
        assert!(r.ok && r.stdout.contains(&waiting), "{}", r.all());
        let r = go(run([vec!["list", "--json"], base.to_vec()].concat())).await;
        assert_eq!(r.json()[0]["push"]["state"], "waiting", "{}", r.all());
        // On again: the waiting changes are due at the next tick.
        let r = go(run([
            vec!["sync-events", "--user", &me, "on"],
            base.to_vec(),
        ]
        .concat()))
        .await;
        assert!(
            r.ok && r.stdout.contains("waited for Sync Events"),
            "{}",
            r.all()
        );
        let r = go(run([vec!["list"], base.to_vec()].concat())).await;
        assert!(
            r.stdout.contains("queued for Microsoft (next tick)"),
            "{}",
            r.all()
        );
        // Removed before it reached Microsoft: nothing to send, and it says so.
        let r = go(run([vec!["remove", &id], base.to_vec()].concat())).await;
        assert!(
            r.ok && r
                .stdout
                .contains("not sent: it was deleted in the CRM before it reached Microsoft"),
            "{}",
            r.all()
        );
        // Deletes from the CRM off for the tenant: a delete says it will not be sent.
        assert!(
            go(run([
                vec!["settings", "--delete-from-crm", "off"],
                base.to_vec()
            ]
            .concat()))
            .await
            .ok
        );
        let r = go(run([
            vec![
                "add",
                "--user",
                &me,
                "--subject",
                "Lunch",
                "--start",
                &start,
                "--end",
                &end,
            ],
            base.to_vec(),
        ]
        .concat()))
        .await;
        assert!(r.ok, "{}", r.all());
        let lunch = r.stdout.split_whitespace().nth(1).unwrap().to_string();
        let r = go(run([vec!["remove", &lunch], base.to_vec()].concat())).await;
        assert!(
            r.ok && r
                .stdout
                .contains("not sent: deletes from the CRM do not go to Microsoft in this tenant"),
            "{}",
            r.all()
        );
        let r = go(run([vec!["list", "--json"], base.to_vec()].concat())).await;
        assert_eq!(r.json(), serde_json::json!([]));
        let r = go(run([
            vec!["deactivate", "--before", "2020-01-01"],
            base.to_vec(),
        ]
        .concat()))
        .await;
        assert!(r.ok && r.stdout.contains("0 event(s)"), "{}", r.all());
        a.finish().await;
    }
}
