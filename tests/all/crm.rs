//! CRM records end to end, through the real `m365sync contact|entity` commands and the store,
//! on SQLite and PostgreSQL: create, update, delete and list with addresses normalised; every
//! change leaves exactly the affected addresses in `contact_changes` for the matching job;
//! CSV and JSON imports report each bad row by line (or index) and import the rest, and are
//! idempotent; an export imports back unchanged; deleting an entity detaches its contacts; a
//! contact carrying a sync user's address is reported (E9); one org never reaches another's
//! records.

use std::collections::BTreeSet;

use m365sync_store::crm::{ContactInput, EntityInput, EntityKind, ListQuery, SaveOutcome};
use m365sync_store::mailboxes::{MailboxKind, NewMailbox};
use m365sync_store::tenants::{AuthMode, NewTenant};
use m365sync_store::StoreError;
use serde_json::Value;

use crate::admin_support::Admin;
use crate::support::TestDb;

/// The addresses queued for re-matching in the org.
async fn changes(pool: &sqlx::AnyPool, org_id: i64) -> BTreeSet<String> {
    sqlx::query_scalar::<_, String>("SELECT address FROM contact_changes WHERE org_id = $1")
        .bind(org_id)
        .fetch_all(pool)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

/// What the matching job does once it has re-matched: forget the queued addresses.
async fn clear_changes(pool: &sqlx::AnyPool) {
    sqlx::query("DELETE FROM contact_changes")
        .execute(pool)
        .await
        .unwrap();
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn tenant(org: &str) -> NewTenant {
    NewTenant {
        org: org.into(),
        name: "main".into(),
        ms_tenant: "c.example".into(),
        authority: "https://localhost:8765".into(),
        graph_url: "https://localhost:8765/v1.0".into(),
        client_id: "11111111-2222-4333-8444-555555555555".into(),
        auth_mode: AuthMode::App,
    }
}

#[tokio::test]
async fn contacts_and_entities_are_edited_with_changes_queued() {
    for db in TestDb::both().await {
        let a = Admin::new(db).await;
        let url = a.db.url.clone();
        let pool = sqlx::AnyPool::connect(&url).await.unwrap();
        let s = &a.store;
        let acme = s.ensure_org("acme").await.unwrap();
        let other = s.ensure_org("other").await.unwrap();

        let r = a
            .run(&[
                "entity",
                "add",
                "--org",
                "acme",
                "--name",
                "Smith household",
                "--kind",
                "household",
                "--domain",
                " Smith.Example ",
                "--external-id",
                "H1",
                "--json",
            ])
            .await;
        assert!(r.ok, "{}", r.all());
        let entity = r.json();
        assert_eq!(
            entity["domains"],
            serde_json::json!(["smith.example"]),
            "{url}"
        );
        let entity_id = entity["id"].as_i64().unwrap();

        // Addresses are trimmed and lower-cased; the new contact's addresses are queued.
        let r = a
            .run(&[
                "contact",
                "add",
                "--org",
                "acme",
                "--name",
                "Alice Smith",
                "--email",
                "  Alice@Example.COM ",
                "--contact-point",
                "A2@Example.com",
                "--entity",
                "ext:H1",
                "--external-id",
                "C1",
                "--json",
            ])
            .await;
        assert!(r.ok, "{}", r.all());
        let alice = r.json();
        assert_eq!(alice["email"], "alice@example.com", "{url}");
        assert_eq!(
            alice["contact_points"],
            serde_json::json!(["a2@example.com"])
        );
        assert_eq!(alice["entity_id"], entity_id);
        assert_eq!(alice["entity_name"], "Smith household");
        let alice_id = alice["id"].as_i64().unwrap();
        assert_eq!(
            changes(&pool, acme).await,
            set(&["alice@example.com", "a2@example.com"]),
            "{url}"
        );

        // An added Alternate Email queues that address only; a new name queues nothing.
        clear_changes(&pool).await;
        let r = a
            .run(&[
                "contact",
                "update",
                "--org",
                "acme",
                "ext:C1",
                "--alt-email",
                "B@example.com",
            ])
            .await;
        assert!(r.ok && r.stdout.contains("updated"), "{}", r.all());
        assert_eq!(changes(&pool, acme).await, set(&["b@example.com"]), "{url}");
        clear_changes(&pool).await;
        let r = a
            .run(&[
                "contact",
                "update",
                "--org",
                "acme",
                &alice_id.to_string(),
                "--name",
                "Alicia Smith",
            ])
            .await;
        assert!(r.ok, "{}", r.all());
        assert!(changes(&pool, acme).await.is_empty(), "{url}");
        // Moving an address between fields queues it; a removed contact point is queued.
        let r = a
            .run(&[
                "contact",
                "update",
                "--org",
                "acme",
                "ext:C1",
                "--remove-contact-point",
                "a2@EXAMPLE.com",
                "--add-contact-point",
                "b@example.com",
                "--alt-email",
                "",
            ])
            .await;
        assert!(r.ok, "{}", r.all());
        assert_eq!(
            changes(&pool, acme).await,
            set(&["a2@example.com", "b@example.com"]),
            "{url}"
        );
        // Leaving the entity affects every address of the contact.
        clear_changes(&pool).await;
        let r = a
            .run(&[
                "contact",
                "update",
                "--org",
                "acme",
                "ext:C1",
                "--no-entity",
            ])
            .await;
        assert!(r.ok, "{}", r.all());
        assert_eq!(
            changes(&pool, acme).await,
            set(&["alice@example.com", "b@example.com"]),
            "{url}"
        );
        // The same again changes nothing.
        clear_changes(&pool).await;
        let r = a
            .run(&[
                "contact",
                "update",
                "--org",
                "acme",
                "ext:C1",
                "--no-entity",
            ])
            .await;
        assert!(r.ok && r.stdout.contains("unchanged"), "{}", r.all());
        assert!(changes(&pool, acme).await.is_empty());

        // A bad address is refused naming the field and the value; nothing is stored.
        let r = a
            .run(&[
                "contact",
                "add",
                "--org",
                "acme",
                "--name",
                "Bob",
                "--email",
                "bob@@x.example",
            ])
            .await;
        assert!(!r.ok, "{}", r.all());
        assert!(r.stderr.contains("email 'bob@@x.example'"), "{}", r.all());
        let r = a
            .run(&[
                "contact",
                "add",
                "--org",
                "acme",
                "--name",
                "  ",
                "--email",
                "bob@x.example",
            ])
            .await;
        assert!(!r.ok && r.stderr.contains("needs a name"), "{}", r.all());
        let r = a
            .run(&[
                "contact",
                "add",
                "--org",
                "acme",
                "--name",
                "Bob",
                "--external-id",
                "C1",
            ])
            .await;
        assert!(!r.ok && r.stderr.contains("already contact"), "{}", r.all());

        // Listing: a table, JSON, a filter on name or address, paging by id.
        let bob = s
            .create_contact(
                acme,
                &ContactInput {
                    name: "Bob Jones".into(),
                    email: Some("bob@jones.example".into()),
                    contact_points: vec!["BOB@home.example".into()],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let r = a.run(&["contact", "list", "--org", "acme"]).await;
        assert!(r.ok, "{}", r.all());
        assert!(r.stdout.contains("Alicia Smith") && r.stdout.contains("bob@jones.example"));
        let r = a
            .run(&[
                "contact",
                "list",
                "--org",
                "acme",
                "--filter",
                "HOME.example",
                "--json",
            ])
            .await;
        let listed = r.json();
        assert_eq!(listed.as_array().unwrap().len(), 1, "{}", r.all());
        assert_eq!(listed[0]["id"], bob.id);
        let page = s
            .list_contacts(
                acme,
                &ListQuery {
                    limit: 1,
                    after_id: Some(alice_id),
                    filter: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(page.iter().map(|c| c.id).collect::<Vec<_>>(), [bob.id]);
        let r = a
            .run(&[
                "contact", "list", "--org", "acme", "--filter", "100%_", "--json",
            ])
            .await;
        assert_eq!(
            r.json(),
            serde_json::json!([]),
            "LIKE characters are literal"
        );

        // Another org sees none of it, and cannot reach it by id.
        assert!(s
            .list_contacts(other, &ListQuery::default())
            .await
            .unwrap()
            .is_empty());
        assert!(matches!(
            s.contact(other, bob.id).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            s.entity(other, entity_id).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            s.update_contact(
                other,
                bob.id,
                &ContactInput {
                    name: "X".into(),
                    ..Default::default()
                }
            )
            .await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            s.delete_contact(other, bob.id).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            s.delete_entity(other, entity_id).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            s.create_contact(
                other,
                &ContactInput {
                    name: "X".into(),
                    entity_id: Some(entity_id),
                    ..Default::default()
                }
            )
            .await,
            Err(StoreError::Invalid(_))
        ));
        let r = a
            .run(&["contact", "show", "--org", "other", &bob.id.to_string()])
            .await;
        assert!(
            !r.ok && r.stderr.contains("no contact with id"),
            "{}",
            r.all()
        );
        assert_eq!(s.contact(acme, bob.id).await.unwrap().name, "Bob Jones");

        // Deleting a contact queues its addresses and drops its activity matches.
        let t = s.upsert_tenant(&tenant("acme")).await.unwrap();
        sqlx::query(
            "INSERT INTO activity_matches (kind, record_id, tenant_id, contact_id, entity_id, address, field, source, reason, decided_by, occurred_ms, at_ms)
             VALUES ('email', 1, $1, $2, NULL, 'bob@jones.example', 'email', 'plugin', 'test', 'test', 0, 0)",
        )
        .bind(t.id)
        .bind(bob.id)
        .execute(&pool)
        .await
        .unwrap();
        clear_changes(&pool).await;
        let r = a
            .run(&["contact", "remove", "--org", "acme", &bob.id.to_string()])
            .await;
        assert!(r.ok, "{}", r.all());
        assert_eq!(
            changes(&pool, acme).await,
            set(&["bob@jones.example", "bob@home.example"]),
            "{url}"
        );
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM activity_matches")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(left, 0, "{url}");
        assert!(matches!(
            s.contact(acme, bob.id).await,
            Err(StoreError::NotFound(_))
        ));

        // Deleting an entity keeps its contacts, without the entity, and queues their addresses.
        let r = a
            .run(&[
                "contact",
                "update",
                "--org",
                "acme",
                "ext:C1",
                "--entity",
                "Smith household",
            ])
            .await;
        assert!(r.ok, "{}", r.all());
        clear_changes(&pool).await;
        let r = a
            .run(&["entity", "remove", "--org", "acme", "ext:H1"])
            .await;
        assert!(r.ok && r.stdout.contains("1 contact(s)"), "{}", r.all());
        let alice = s.contact(acme, alice_id).await.unwrap();
        assert_eq!((alice.entity_id, alice.entity_name), (None, None));
        assert_eq!(
            changes(&pool, acme).await,
            set(&["alice@example.com", "b@example.com"]),
            "{url}"
        );
        let r = a.run(&["entity", "list", "--org", "acme", "--json"]).await;
        assert_eq!(r.json(), serde_json::json!([]), "{}", r.all());

        pool.close().await;
        a.finish().await;
    }
}

const ENTITIES_CSV: &str = "External ID,Name,Type,Domains\n\
    H1,Smith household,household,smith.example\n\
    C1,Acme Ltd,Company,\"acme.example; ACME.co.example\"\n\
    C2,Nameless,corporation,\n";

/// Line 2 good; 3 a bad address; 4 no name; 5 an unknown entity; 6 good with contact points
/// and a multi-line quoted note; 8 a stray quote.
const CONTACTS_CSV: &str = "External ID,Name,E-mail,Alternate Email,Contact Points,Entity,Notes\n\
    P1,Alice Smith,  Alice@Smith.Example ,,,Smith household,\n\
    P2,Bad Address,bob@@smith.example,,,,\n\
    P3,,carol@smith.example,,,,\n\
    P4,Dan Unknown,dan@x.example,,,No Such Household,\n\
    P5,Eve Acme,eve@acme.example,EVE@home.example,\"e1@acme.example;e2@acme.example\",Acme Ltd,\"two\nlines\"\n\
    P6,Fr\"ank,f@x.example,,,,\n";

#[tokio::test]
async fn imports_report_bad_rows_and_exports_import_back_unchanged() {
    for db in TestDb::both().await {
        let a = Admin::new(db).await;
        let url = a.db.url.clone();
        let s = &a.store;
        let acme = s.ensure_org("acme").await.unwrap();
        let other = s.ensure_org("other").await.unwrap();
        std::fs::write(a.dir.join("entities.csv"), ENTITIES_CSV).unwrap();
        std::fs::write(a.dir.join("contacts.csv"), CONTACTS_CSV).unwrap();

        let r = a
            .run(&[
                "entity",
                "import",
                "--org",
                "acme",
                "entities.csv",
                "--json",
            ])
            .await;
        assert_eq!(r.code, Some(3), "one row refused: partly done {}", r.all());
        let report = r.json();
        assert_eq!(
            (
                report["created"].as_i64(),
                report["errors"][0]["location"]["line"].as_i64()
            ),
            (Some(2), Some(4)),
            "{}",
            r.all()
        );
        assert!(report["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("corporation"));
        let acme_ltd = s.entity_by_external_id(acme, "C1").await.unwrap().unwrap();
        assert_eq!(acme_ltd.kind, EntityKind::Company);
        assert_eq!(acme_ltd.domains, ["acme.co.example", "acme.example"]);

        let r = a
            .run(&["contact", "import", "--org", "acme", "contacts.csv"])
            .await;
        // Some rows refused, the rest imported: partly done, exit 3.
        assert_eq!(r.code, Some(3), "{}", r.all());
        assert!(
            r.stderr
                .contains("partly done: contacts.csv: 4 row(s) refused"),
            "{}",
            r.all()
        );
        assert!(
            r.stdout
                .contains("2 created, 0 updated, 0 unchanged, 4 with errors"),
            "{}",
            r.all()
        );
        for (line, why) in [
            (3, "email 'bob@@smith.example'"),
            (4, "no name"),
            (5, "no entity named 'No Such Household'"),
            (8, "quote"),
        ] {
            assert!(
                r.stdout.contains(&format!("contacts.csv: line {line}: "))
                    && r.stdout.contains(why),
                "line {line} ({why}): {}",
                r.all()
            );
        }
        let alice = s.contact_by_external_id(acme, "P1").await.unwrap().unwrap();
        assert_eq!(alice.email.as_deref(), Some("alice@smith.example"), "{url}");
        assert_eq!(alice.entity_name.as_deref(), Some("Smith household"));
        let eve = s.contact_by_external_id(acme, "P5").await.unwrap().unwrap();
        assert_eq!(eve.alt_email.as_deref(), Some("eve@home.example"));
        assert_eq!(eve.contact_points, ["e1@acme.example", "e2@acme.example"]);
        assert_eq!(eve.entity_id, Some(acme_ltd.id));

        // Again: nothing changes, the same rows are reported.
        let r = a
            .run(&[
                "contact",
                "import",
                "--org",
                "acme",
                "contacts.csv",
                "--json",
            ])
            .await;
        let report = r.json();
        assert_eq!(
            (
                report["created"].as_i64(),
                report["updated"].as_i64(),
                report["unchanged"].as_i64(),
                report["errors"].as_array().unwrap().len()
            ),
            (Some(0), Some(0), Some(2), 4),
            "{}",
            r.all()
        );

        // JSON: bad items reported by their index; known contacts updated by external id.
        let json = serde_json::json!([
            {"external_id": "P1", "name": "Alice Smith", "email": "alice@smith.example", "contact_points": ["Alice.Work@Smith.example"]},
            {"external_id": "J2", "name": "No At", "alt_email": "nobody"},
            {"external_id": "J3", "email": "j3@x.example"},
            {"externalId": "J4", "Name": "Jo", "Entity External ID": "nope"},
            "not an object",
            {"External ID": "J6", "Full Name": "Jay", "Email": "Jay@X.example", "entity_id": acme_ltd.id},
            {"external_id": "J6", "alt_email": "Jay@Alt.example"},
        ]);
        std::fs::write(a.dir.join("contacts.json"), json.to_string()).unwrap();
        let r = a
            .run(&[
                "contact",
                "import",
                "--org",
                "acme",
                "contacts.json",
                "--json",
            ])
            .await;
        assert_eq!(
            r.code,
            Some(3),
            "some rows refused: partly done {}",
            r.all()
        );
        let report = r.json();
        assert_eq!(
            (report["created"].as_i64(), report["updated"].as_i64()),
            (Some(1), Some(2)),
            "{}",
            r.all()
        );
        let errors: Vec<(i64, String)> = report["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["location"]["index"].as_i64().unwrap(),
                    e["message"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            errors.iter().map(|e| e.0).collect::<Vec<_>>(),
            [1, 2, 3, 4],
            "{errors:?}"
        );
        assert!(errors[0].1.contains("alt_email 'nobody'"), "{errors:?}");
        assert!(errors[2].1.contains("external id 'nope'"), "{errors:?}");
        let alice = s.contact_by_external_id(acme, "P1").await.unwrap().unwrap();
        assert_eq!(alice.contact_points, ["alice.work@smith.example"]);
        assert_eq!(
            alice.entity_name.as_deref(),
            Some("Smith household"),
            "absent columns keep their values"
        );
        let jay = s.contact_by_external_id(acme, "J6").await.unwrap().unwrap();
        assert_eq!(
            (
                jay.email.as_deref(),
                jay.alt_email.as_deref(),
                jay.entity_id
            ),
            (
                Some("jay@x.example"),
                Some("jay@alt.example"),
                Some(acme_ltd.id)
            ),
            "a second row for a record starts from what the first stored"
        );

        // A contact without an external id round-trips by its id too.
        s.create_contact(
            acme,
            &ContactInput {
                name: "Local, Only \"Q\"".into(),
                email: Some("q@x.example".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        for (what, format) in [
            ("contact", "csv"),
            ("contact", "json"),
            ("entity", "csv"),
            ("entity", "json"),
        ] {
            let file = format!("{what}-export.{format}");
            let r = a
                .run(&[what, "export", "--org", "acme", "--out", &file])
                .await;
            assert!(r.ok, "{}", r.all());
            let r = a
                .run(&[what, "import", "--org", "acme", &file, "--json"])
                .await;
            assert!(r.ok, "{}", r.all());
            let report = r.json();
            let total = if what == "contact" { 4 } else { 2 };
            assert_eq!(
                (
                    report["created"].as_i64(),
                    report["updated"].as_i64(),
                    report["unchanged"].as_i64(),
                    report["errors"].as_array().unwrap().len()
                ),
                (Some(0), Some(0), Some(total), 0),
                "{what} {format} on {url}: {}",
                r.all()
            );
        }
        let r = a.run(&["contact", "export", "--org", "acme"]).await;
        assert!(r.stdout.starts_with("id,external_id,name,email,alt_email,contact_points,entity_id,entity_external_id,entity\r\n"), "{}", r.all());
        assert!(
            r.stdout.contains("\"e1@acme.example;e2@acme.example\"")
                || r.stdout.contains("e1@acme.example;e2@acme.example")
        );

        // An export imported into another org does not reach the first org's records by id.
        let r = a
            .run(&[
                "contact",
                "import",
                "--org",
                "other",
                "contact-export.csv",
                "--json",
            ])
            .await;
        assert!(!r.ok, "every row names an id of another org: {}", r.all());
        assert!(r.stdout.contains("no contact with id"), "{}", r.all());
        assert!(s
            .list_contacts(other, &ListQuery::default())
            .await
            .unwrap()
            .is_empty());

        // Files that cannot be read at all fail the command.
        std::fs::write(a.dir.join("wrong.csv"), "email,phone\na@x.example,1\n").unwrap();
        let r = a
            .run(&["contact", "import", "--org", "acme", "wrong.csv"])
            .await;
        assert!(
            !r.ok
                && r.stderr
                    .contains("wrong.csv: line 1: the header (email,phone) has no name column"),
            "{}",
            r.all()
        );
        std::fs::write(a.dir.join("wrong.json"), "{\"a\": 1}").unwrap();
        let r = a
            .run(&["contact", "import", "--org", "acme", "wrong.json"])
            .await;
        assert!(
            !r.ok && r.stderr.contains("expected an array"),
            "{}",
            r.all()
        );
        std::fs::write(a.dir.join("contacts.txtx"), "name\nA\n").unwrap();
        let r = a
            .run(&["contact", "import", "--org", "acme", "contacts.txtx"])
            .await;
        assert!(!r.ok && r.stderr.contains("--format"), "{}", r.all());

        a.finish().await;
    }
}

#[tokio::test]
async fn contacts_carrying_sync_user_addresses_are_reported() {
    for db in TestDb::both().await {
        let a = Admin::new(db).await;
        let url = a.db.url.clone();
        let s = &a.store;
        let acme = s.ensure_org("acme").await.unwrap();
        let other = s.ensure_org("other").await.unwrap();
        let t = s.upsert_tenant(&tenant("acme")).await.unwrap();
        let alice = s
            .upsert_user(t.id, "alice@c.example", "Alice")
            .await
            .unwrap();
        let info = s
            .upsert_mailbox(&NewMailbox {
                tenant_id: t.id,
                graph_id: "g-info".into(),
                address: "info@c.example".into(),
                display_name: "Info".into(),
                kind: MailboxKind::Shared,
            })
            .await
            .unwrap();
        s.link_mailbox(info, alice).await.unwrap();
        // An unlinked mailbox is not a sync user's address.
        s.upsert_mailbox(&NewMailbox {
            tenant_id: t.id,
            graph_id: "g-loose".into(),
            address: "loose@c.example".into(),
            display_name: "Loose".into(),
            kind: MailboxKind::Shared,
        })
        .await
        .unwrap();

        let r = a.run(&["contact", "warnings", "--org", "acme"]).await;
        assert!(r.ok && r.stdout.contains("no contact"), "{}", r.all());

        let client = s
            .create_contact(
                acme,
                &ContactInput {
                    name: "Client With Shared Address".into(),
                    email: Some("client@x.example".into()),
                    contact_points: vec!["INFO@c.example".into(), "loose@c.example".into()],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let oops = s
            .create_contact(
                acme,
                &ContactInput {
                    name: "Alice By Mistake".into(),
                    alt_email: Some("Alice@C.example".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        // Another org's contact with the same address is not acme's business, nor a warning
        // for the other org (its tenants have no such user).
        s.create_contact(
            other,
            &ContactInput {
                name: "Elsewhere".into(),
                email: Some("info@c.example".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();

        let r = a
            .run(&["contact", "warnings", "--org", "acme", "--json"])
            .await;
        assert!(r.ok, "{}", r.all());
        let got: Vec<(i64, String, String, String, String)> = r
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|w: &Value| {
                (
                    w["contact"]["id"].as_i64().unwrap(),
                    w["address"].as_str().unwrap().to_string(),
                    w["field"].as_str().unwrap().to_string(),
                    w["user_email"].as_str().unwrap().to_string(),
                    w["via"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let want = vec![
            (
                client.id,
                "info@c.example".into(),
                "contact_point".into(),
                "alice@c.example".into(),
                "mailbox".into(),
            ),
            (
                oops.id,
                "alice@c.example".into(),
                "alt_email".into(),
                "alice@c.example".into(),
                "user".into(),
            ),
        ];
        assert_eq!(got, want, "{url}");
        let r = a.run(&["contact", "warnings", "--org", "acme"]).await;
        assert!(
            r.stdout.contains("Alice By Mistake") && r.stdout.contains("2 address(es)"),
            "{}",
            r.all()
        );
        assert!(s
            .contacts_with_sync_user_addresses(other)
            .await
            .unwrap()
            .is_empty());

        // Through the store API as the admin API uses it.
        let (outcome, c) = s
            .add_contact_point(acme, client.id, " New@X.example")
            .await
            .unwrap();
        assert_eq!(outcome, SaveOutcome::Updated);
        assert!(c.contact_points.contains(&"new@x.example".to_string()));
        assert_eq!(
            s.add_contact_point(acme, client.id, "new@x.example")
                .await
                .unwrap()
                .0,
            SaveOutcome::Unchanged
        );
        assert_eq!(
            s.contacts_by_address(acme, "NEW@x.example")
                .await
                .unwrap()
                .len(),
            1
        );
        let e = s
            .create_entity(
                acme,
                &EntityInput {
                    external_id: Some("E".into()),
                    name: "E".into(),
                    kind: EntityKind::Company,
                    domains: vec![],
                },
            )
            .await
            .unwrap();
        let (o, _) = s
            .upsert_entity_by_external_id(
                acme,
                &EntityInput {
                    external_id: Some("E".into()),
                    name: "E2".into(),
                    kind: EntityKind::Company,
                    domains: vec![],
                },
            )
            .await
            .unwrap();
        assert_eq!(
            (o, s.entity(acme, e.id).await.unwrap().name.as_str()),
            (SaveOutcome::Updated, "E2")
        );
        let (o, c) = s
            .upsert_contact_by_external_id(
                acme,
                &ContactInput {
                    external_id: Some("X1".into()),
                    name: "X".into(),
                    entity_id: Some(e.id),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(
            (o, c.entity_name.as_deref()),
            (SaveOutcome::Created, Some("E2"))
        );
        a.finish().await;
    }
}
