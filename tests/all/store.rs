//! The store on SQLite and PostgreSQL: migrations, tenants and settings, secrets at rest, and
//! the per-page commit's guarantees (one email across mailboxes, harmless replays, atomicity).

use m365sync_store::mailboxes::{MailboxKind, NewMailbox};
use m365sync_store::sync::{Cursor, EmailRecord, Exclusion, FailedRecord, PageCommit};
use m365sync_store::tenants::{AuthMode, NewTenant, SecretKind, TenantSettings};
use m365sync_store::{SecretKey, Store};

use crate::support::TestDb;

fn tenant(name: &str) -> NewTenant {
    NewTenant {
        org: "acme".into(),
        name: name.into(),
        ms_tenant: "contoso.example".into(),
        authority: "https://localhost:8765".into(),
        graph_url: "https://localhost:8765/v1.0".into(),
        client_id: "11111111-2222-4333-8444-555555555555".into(),
        auth_mode: AuthMode::App,
    }
}

fn email(graph_id: &str, imid: &str) -> EmailRecord {
    EmailRecord {
        graph_id: graph_id.into(),
        internet_message_id: imid.into(),
        conversation_id: "conv".into(),
        subject: "Quarterly review".into(),
        sender: "Client@Acme.example".into(),
        sent_ms: 1_760_000_000_000,
        received_ms: 1_760_000_001_000,
        recipients: vec![("to".into(), "alice@contoso.example".into(), "Alice".into())],
        record: r#"{"subject":"Quarterly review"}"#.into(),
        decided_by: "field-mapping 0.1.0 sha256:abc".into(),
        attachments: Default::default(),
    }
}

async fn mailbox(store: &Store, tenant_id: i64, address: &str) -> i64 {
    store
        .upsert_mailbox(&NewMailbox {
            tenant_id,
            graph_id: format!("gid-{address}"),
            address: address.into(),
            display_name: address.into(),
            kind: MailboxKind::Person,
        })
        .await
        .unwrap()
}

fn page(org_id: i64, tenant_id: i64, mailbox_id: i64, folder: &str, link: &str) -> PageCommit {
    PageCommit {
        org_id,
        tenant_id,
        mailbox_id,
        folder: folder.into(),
        upserts: vec![],
        removals: vec![],
        exclusions: vec![],
        failures: vec![],
        cursor: Some(Cursor {
            link: link.into(),
            complete: false,
            round_started_ms: 1,
            full: false,
        }),
        cursor_key: None,
        run_id: None,
        lease: None,
    }
}

#[tokio::test]
async fn tenants_are_idempotent_and_settings_validated() {
    for db in TestDb::both().await {
        let s = &db.store;
        let a = s.upsert_tenant(&tenant("main")).await.unwrap();
        let again = s
            .upsert_tenant(&NewTenant {
                client_id: "changed".into(),
                ..tenant("main")
            })
            .await
            .unwrap();
        assert_eq!(a.id, again.id, "{}", db.url);
        assert_eq!(again.client_id, "changed");
        s.upsert_tenant(&tenant("second")).await.unwrap();
        assert_eq!(s.tenants(Some("acme")).await.unwrap().len(), 2);
        assert!(s
            .tenant("acme", "nope")
            .await
            .unwrap_err()
            .to_string()
            .contains("tenant list"));
        let defaults = s.settings(a.id).await.unwrap();
        assert_eq!(defaults, TenantSettings::default());
        let mut changed = defaults.clone();
        changed.internal_domains = vec!["Contoso.example ".into()];
        changed.cadence_minutes = 60;
        s.set_settings(a.id, &changed).await.unwrap();
        assert_eq!(
            s.settings(a.id).await.unwrap().internal_domains,
            vec!["contoso.example"]
        );
        let bad = TenantSettings {
            cadence_minutes: 5,
            ..changed
        };
        assert!(s
            .set_settings(a.id, &bad)
            .await
            .unwrap_err()
            .to_string()
            .contains("cadence_minutes"));
        s.set_tenant_enabled(a.id, false).await.unwrap();
        assert!(!s.tenant_by_id(a.id).await.unwrap().enabled);
        db.drop_db().await;
    }
}

#[tokio::test]
async fn secrets_are_encrypted_at_rest_and_rotate() {
    for db in TestDb::both().await {
        let s = &db.store;
        let t = s.upsert_tenant(&tenant("main")).await.unwrap();
        s.put_secret(
            t.id,
            SecretKind::ClientSecret,
            "2026-01",
            "first-secret-value",
        )
        .await
        .unwrap();
        s.put_secret(
            t.id,
            SecretKind::ClientSecret,
            "2026-06",
            "second-secret-value",
        )
        .await
        .unwrap();
        let secrets = s.secrets(t.id, SecretKind::ClientSecret).await.unwrap();
        assert_eq!(secrets.len(), 2);
        assert!(secrets.iter().any(|(_, v)| v == "first-secret-value"));
        // Nothing readable in the database itself.
        let raw: Vec<Vec<u8>> =
            sqlx::query_scalar::<_, Vec<u8>>("SELECT ciphertext FROM tenant_secrets")
                .fetch_all(&sqlx::AnyPool::connect(&db.url).await.unwrap())
                .await
                .unwrap();
        assert!(raw
            .iter()
            .all(|c| !String::from_utf8_lossy(c).contains("secret-value")));
        assert!(s
            .remove_secret(t.id, SecretKind::ClientSecret, "2026-01")
            .await
            .unwrap());
        assert_eq!(
            s.secrets(t.id, SecretKind::ClientSecret).await.unwrap(),
            vec![("2026-06".to_string(), "second-secret-value".to_string())]
        );
        // Another key cannot open them, and says what to do.
        let other = Store::open(&db.url, SecretKey::generate()).await.unwrap();
        let err = other
            .secrets(t.id, SecretKind::ClientSecret)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("another key"), "{err}");
        other.close().await;
        db.drop_db().await;
    }
}

#[tokio::test]
async fn one_email_across_mailboxes_and_replays_are_harmless() {
    for db in TestDb::both().await {
        let s = &db.store;
        let t = s.upsert_tenant(&tenant("main")).await.unwrap();
        let (alice, bob) = (
            mailbox(s, t.id, "alice@contoso.example").await,
            mailbox(s, t.id, "bob@contoso.example").await,
        );
        let mut p = page(t.org_id, t.id, alice, "inbox", "next-1");
        p.upserts = vec![email("A1", "<m1@acme>"), email("A2", "<m2@acme>")];
        s.commit_page(&p).await.unwrap();
        s.commit_page(&p).await.unwrap(); // a replayed page
        let mut q = page(t.org_id, t.id, bob, "inbox", "delta-1");
        q.upserts = vec![email("B1", "<m1@acme>")];
        q.cursor.as_mut().unwrap().complete = true;
        s.commit_page(&q).await.unwrap();
        assert_eq!(s.email_count(t.id).await.unwrap(), 2, "{}", db.url);
        assert_eq!(
            s.email_links(t.id, "<m1@acme>").await.unwrap(),
            vec![alice, bob]
        );
        assert_eq!(
            s.cursor(alice, "inbox").await.unwrap().unwrap().link,
            "next-1"
        );
        assert!(s.cursor(bob, "inbox").await.unwrap().unwrap().complete);
        db.drop_db().await;
    }
}

#[tokio::test]
async fn removals_touch_only_their_folder_and_failures_are_kept() {
    for db in TestDb::both().await {
        let s = &db.store;
        let t = s.upsert_tenant(&tenant("main")).await.unwrap();
        let alice = mailbox(s, t.id, "alice@contoso.example").await;
        let mut p = page(t.org_id, t.id, alice, "inbox", "l1");
        p.upserts = vec![email("A1", "<m1@acme>"), email("A2", "<m2@acme>")];
        p.exclusions = vec![Exclusion {
            graph_id: "A3".into(),
            rule: "org: *@newsletter.example".into(),
            decided_by: "exclusion-rules 0.1.0".into(),
        }];
        p.failures = vec![FailedRecord {
            graph_id: "A4".into(),
            stage: "map".into(),
            error: "plugin trapped".into(),
            subject: "A4's subject".into(),
            plugin: "field-mapping 0.1.0 sha256:00".into(),
            payload: "{}".into(),
        }];
        s.commit_page(&p).await.unwrap();
        // A1 moved to archive (same immutable id): archive's round records the arrival first...
        let mut a = page(t.org_id, t.id, alice, "archive", "l2");
        a.upserts = vec![email("A1", "<m1@acme>")];
        s.commit_page(&a).await.unwrap();
        // ...then the inbox's round reports it removed: it must stay, in archive.
        let mut r = page(t.org_id, t.id, alice, "inbox", "l3");
        r.removals = vec!["A1".into(), "A2".into()];
        s.commit_page(&r).await.unwrap();
        assert_eq!(s.mailbox_graph_ids(alice, None).await.unwrap(), vec!["A1"]);
        assert_eq!(
            s.mailbox_graph_ids(alice, Some("archive")).await.unwrap(),
            vec!["A1"]
        );
        // The failed record stays until a later page stores it, then it is cleared.
        let count = |sql: &'static str| {
            let url = db.url.clone();
            async move {
                sqlx::query_scalar::<_, i64>(sql)
                    .fetch_one(&sqlx::AnyPool::connect(&url).await.unwrap())
                    .await
                    .unwrap()
            }
        };
        assert_eq!(count("SELECT COUNT(*) FROM failed_records").await, 1);
        let mut retry = page(t.org_id, t.id, alice, "inbox", "l4");
        retry.upserts = vec![email("A4", "<m4@acme>")];
        s.commit_page(&retry).await.unwrap();
        assert_eq!(count("SELECT COUNT(*) FROM failed_records").await, 0);
        assert_eq!(count("SELECT COUNT(*) FROM exclusions").await, 1);
        db.drop_db().await;
    }
}

#[tokio::test]
async fn a_failed_page_stores_nothing_and_keeps_the_old_cursor() {
    for db in TestDb::both().await {
        let s = &db.store;
        let t = s.upsert_tenant(&tenant("main")).await.unwrap();
        let alice = mailbox(s, t.id, "alice@contoso.example").await;
        s.commit_page(&page(t.org_id, t.id, alice, "inbox", "before"))
            .await
            .unwrap();
        // A page whose last write breaks a constraint (an unknown mailbox for the cursor).
        let mut bad = page(t.org_id, t.id, alice, "inbox", "after");
        bad.upserts = vec![email("A1", "<m1@acme>")];
        bad.exclusions = vec![Exclusion {
            graph_id: "X".into(),
            rule: "r".into(),
            decided_by: "p".into(),
        }];
        let mut broken = bad.clone();
        broken.mailbox_id = 999_999;
        assert!(s.commit_page(&broken).await.is_err(), "{}", db.url);
        assert_eq!(
            s.email_count(t.id).await.unwrap(),
            0,
            "nothing of the failed page is stored"
        );
        assert_eq!(
            s.cursor(alice, "inbox").await.unwrap().unwrap().link,
            "before"
        );
        s.commit_page(&bad).await.unwrap();
        assert_eq!(s.email_count(t.id).await.unwrap(), 1);
        db.drop_db().await;
    }
}

#[tokio::test]
async fn runs_are_recorded_and_listed_newest_first() {
    for db in TestDb::both().await {
        let s = &db.store;
        let t = s.upsert_tenant(&tenant("main")).await.unwrap();
        let first = s.begin_run(t.id, None, "schedule").await.unwrap();
        s.finish_run(first, "succeeded", 10, 9, 1).await.unwrap();
        let second = s.begin_run(t.id, None, "manual").await.unwrap();
        let runs = s.runs(t.id, 10).await.unwrap();
        assert_eq!(
            runs.iter().map(|r| r.id).collect::<Vec<_>>(),
            vec![second, first]
        );
        assert_eq!(
            (runs[1].processed, runs[1].synced, runs[1].errors),
            (10, 9, 1)
        );
        assert_eq!(runs[0].status, "running");
        // Paged by the last id of the page before.
        let newest = s.runs_before(t.id, None, 1).await.unwrap();
        assert_eq!(
            newest.iter().map(|r| r.id).collect::<Vec<_>>(),
            vec![second]
        );
        let older = s.runs_before(t.id, Some(second), 50).await.unwrap();
        assert_eq!(older.iter().map(|r| r.id).collect::<Vec<_>>(), vec![first]);
        assert!(s
            .runs_before(t.id, Some(first), 50)
            .await
            .unwrap()
            .is_empty());
        db.drop_db().await;
    }
}

/// Turns TLS on in the local PostgreSQL if it is off (Debian's packages ship it on, with the
/// snakeoil certificate): a self-signed certificate for 127.0.0.1 made here, in the server's
/// data directory, owned by the server's user. Answers the certificate the server presents.
async fn server_tls(admin: &str) -> std::path::PathBuf {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(admin).await.unwrap();
    let show = |name: &'static str| format!("SHOW {name}");
    let ssl: String = sqlx::query_scalar(&show("ssl"))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    if ssl == "on" {
        let file: String = sqlx::query_scalar(&show("ssl_cert_file"))
            .fetch_one(&mut conn)
            .await
            .unwrap();
        let data: String = sqlx::query_scalar(&show("data_directory"))
            .fetch_one(&mut conn)
            .await
            .unwrap();
        return std::path::Path::new(&data).join(file);
    }
    let data: String = sqlx::query_scalar(&show("data_directory"))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let dir = std::path::Path::new(&data);
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let (cert_path, key_path) = (dir.join("m365sync-test.crt"), dir.join("m365sync-test.key"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let owner = std::fs::metadata(dir).unwrap();
    for p in [&cert_path, &key_path] {
        std::os::unix::fs::chown(p, Some(owner.uid()), Some(owner.gid())).unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    for sql in [
        format!("ALTER SYSTEM SET ssl_cert_file = '{}'", cert_path.display()),
        format!("ALTER SYSTEM SET ssl_key_file = '{}'", key_path.display()),
        "ALTER SYSTEM SET ssl = on".to_string(),
        "SELECT pg_reload_conf()".to_string(),
    ] {
        sqlx::query(&sql).execute(&mut conn).await.unwrap();
    }
    cert_path
}

/// Whether the store's own connection is encrypted, as the server sees it.
async fn encrypted(store: &Store) -> bool {
    sqlx::query_scalar::<_, bool>("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(store.pool())
        .await
        .unwrap()
}

/// Issue 15: TLS to PostgreSQL is compiled in. `sslmode=require` encrypts (a managed
/// PostgreSQL that requires TLS can be used), `verify-full` checks the server's certificate
/// and name against the root given, `disable` stays plaintext; the store works the same over
/// each, and a certificate the root does not sign is refused in words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls_with_sslmode_require() {
    let db = TestDb::postgres().await;
    let admin = std::env::var("M365SYNC_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let cert = server_tls(&admin).await;
    let with = |params: &str| format!("{}?{params}", db.url);
    let require = Store::open(&with("sslmode=require"), SecretKey::generate())
        .await
        .unwrap_or_else(|e| panic!("sslmode=require: {e}"));
    assert!(encrypted(&require).await, "sslmode=require is encrypted");
    let t = require.upsert_tenant(&tenant("over-tls")).await.unwrap();
    assert_eq!(require.tenant("acme", "over-tls").await.unwrap().id, t.id);

    // verify-full, against a readable copy of the server's certificate (its own file belongs
    // to the server's user), by the name it was made for (localhost).
    let copy = std::env::temp_dir().join(format!("m365sync-pg-ca-{}.pem", std::process::id()));
    std::fs::copy(&cert, &copy).unwrap();
    let by_name = db.url.replacen("@127.0.0.1:", "@localhost:", 1);
    let verified = Store::open(
        &format!(
            "{by_name}?sslmode=verify-full&sslrootcert={}",
            copy.display()
        ),
        SecretKey::generate(),
    )
    .await
    .unwrap_or_else(|e| panic!("sslmode=verify-full: {e}"));
    assert!(encrypted(&verified).await);
    assert_eq!(verified.tenants(Some("acme")).await.unwrap().len(), 1);

    // A certificate the server's is not signed by is refused, naming the database.
    let other = rcgen::generate_simple_self_signed(vec!["elsewhere.example".into()]).unwrap();
    let wrong = std::env::temp_dir().join(format!("m365sync-pg-wrong-{}.pem", std::process::id()));
    std::fs::write(&wrong, other.cert.pem()).unwrap();
    let Err(refused) = Store::open(
        &with(&format!(
            "sslmode=verify-full&sslrootcert={}",
            wrong.display()
        )),
        SecretKey::generate(),
    )
    .await
    else {
        panic!("a server certificate the root does not sign must be refused");
    };
    let said = refused.to_string();
    assert!(
        said.contains("127.0.0.1") && said.contains("TLS certificate"),
        "{said}"
    );

    let plain = Store::open(&with("sslmode=disable"), SecretKey::generate())
        .await
        .unwrap();
    assert!(!encrypted(&plain).await, "sslmode=disable stays plaintext");
    for s in [require, verified, plain] {
        s.pool().close().await;
    }
    let _ = std::fs::remove_file(copy);
    let _ = std::fs::remove_file(wrong);
    db.drop_db().await;
}

/// The write-ahead log's first salt (bytes 16..20 of its header, big-endian): random when the
/// log is created, and one more each time the log starts over from its beginning.
fn wal_salt(db_file: &str) -> u32 {
    let bytes = std::fs::read(format!("{db_file}-wal")).unwrap();
    u32::from_be_bytes(bytes[16..20].try_into().unwrap())
}

/// A SQLite store with one tenant and one mailbox, for the log's tests: the store, the
/// tenant, the mailbox and the database file's path.
async fn log_test_store() -> (TestDb, m365sync_store::tenants::Tenant, i64, String) {
    let db = TestDb::sqlite().await;
    let t = db.store.upsert_tenant(&tenant("main")).await.unwrap();
    let alice = mailbox(&db.store, t.id, "alice@contoso.example").await;
    let file = db.url.trim_start_matches("sqlite://").to_string();
    (db, t, alice, file)
}

/// Page `n` of a backfill: `emails` new emails, ids numbered by the page.
fn numbered_page(
    t: &m365sync_store::tenants::Tenant,
    mailbox: i64,
    n: u64,
    emails: u64,
) -> PageCommit {
    let mut p = page(t.org_id, t.id, mailbox, "inbox", &format!("next-{n}"));
    p.upserts = (0..emails)
        .map(|i| email(&format!("G{n}-{i}"), &format!("<m{n}-{i}@acme>")))
        .collect();
    p
}

#[tokio::test]
async fn sqlite_log_starts_over_under_continuous_page_commits_and_a_busy_reader() {
    use m365sync_store::wal::RESTART_EVERY;
    let (db, t, alice, file) = log_test_store().await;
    let s = &db.store;
    let salt_before = wal_salt(&file);
    // A reader that never pauses, as the console and the other workers are: a passive
    // checkpoint alone would never find the log unused.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (s, stop) = (s.clone(), stop.clone());
        tokio::spawn(async move {
            let mut reads = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                s.email_count(t.id).await.unwrap();
                reads += 1;
            }
            reads
        })
    };
    let commits = 6 * RESTART_EVERY;
    for n in 0..commits {
        s.commit_page(&numbered_page(&t, alice, n, 50))
            .await
            .unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(reader.await.unwrap() > 0);
    // Each RESTART_EVERY-th commit restarted the log (the last one's takes effect at the next
    // write); without them nothing would have: the automatic checkpoint's interval is far
    // beyond this test's writes, and a passive checkpoint never restarts the log itself.
    let restarts = wal_salt(&file).wrapping_sub(salt_before);
    assert!((4..=6).contains(&restarts), "restarts: {restarts}");
    assert_eq!(
        s.email_count(t.id).await.unwrap(),
        (commits * 50) as i64,
        "every committed email is there"
    );
    db.drop_db().await;
}

#[tokio::test]
async fn sqlite_writers_go_on_beside_a_long_reader_and_the_log_restarts_after_it() {
    use m365sync_store::wal::RESTART_EVERY;
    use sqlx::Connection;
    let (db, t, alice, file) = log_test_store().await;
    let s = &db.store;
    let commit = |n: u64| numbered_page(&t, alice, n, 20);
    // A reader holding one snapshot open (an export, a long console read) across two restart
    // turns: the log cannot start over under it, and no writer may fail or wait for it.
    let mut reader = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut reader).await.unwrap();
    let seen: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM emails")
        .fetch_one(&mut reader)
        .await
        .unwrap();
    let salt_held = wal_salt(&file);
    for n in 0..2 * RESTART_EVERY {
        s.commit_page(&commit(n)).await.unwrap();
    }
    assert_eq!(
        wal_salt(&file),
        salt_held,
        "no restart under the open snapshot"
    );
    let still: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM emails")
        .fetch_one(&mut reader)
        .await
        .unwrap();
    assert_eq!(still, seen, "the reader's snapshot is intact");
    sqlx::query("COMMIT").execute(&mut reader).await.unwrap();
    reader.close().await.unwrap();
    // The reader gone, the next turns restart the log again.
    for n in 2 * RESTART_EVERY..4 * RESTART_EVERY + 1 {
        s.commit_page(&commit(n)).await.unwrap();
    }
    assert!(
        wal_salt(&file) != salt_held,
        "the log restarted once the reader left"
    );
    assert_eq!(
        s.email_count(t.id).await.unwrap(),
        (20 * (4 * RESTART_EVERY + 1)) as i64
    );
    db.drop_db().await;
}
