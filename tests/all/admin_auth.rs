//! Delegated authentication end to end (A2), on SQLite and PostgreSQL: `tenant authorize`
//! prints the authorize address, the browser (here: a GET following redirects) lands on the
//! command's loopback listener, the code is exchanged with PKCE and the refresh token stored
//! encrypted; `tenant test` and `sync run` then get tokens with it, and every rotated refresh
//! token is written back. An expired refresh token is named, with what to do.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use m365sync::credentials::REFRESH_TOKEN_LABEL;
use m365sync_store::tenants::SecretKind;
use m365sync_store::Store;
use reqwest::Method;
use serde_json::json;

use crate::admin_support::Admin;
use crate::support::{small, TestDb, TestSim};

async fn refresh_token(store: &Store, tenant_id: i64) -> String {
    let stored = store
        .secrets(tenant_id, SecretKind::RefreshToken)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1, "one current refresh token");
    assert_eq!(stored[0].0, REFRESH_TOKEN_LABEL);
    stored[0].1.clone()
}

/// Runs `tenant authorize --no-browser`, opens the address it prints, and returns its output.
async fn authorize(a: &Admin, login_hint: &str) -> (bool, String) {
    let mut child = a
        .command(&[
            "tenant",
            "authorize",
            "--org",
            "acme",
            "--tenant",
            "main",
            "--no-browser",
            "--login-hint",
            login_hint,
            "--timeout-secs",
            "60",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let reader = tokio::task::spawn_blocking(move || {
        let mut tx = Some(tx);
        let mut all = String::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if line.contains("/oauth2/v2.0/authorize?") {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(line.trim().to_string());
                }
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let url = rx.await.expect("the command prints the authorize address");
    assert!(
        url.contains("code_challenge_method=S256") && url.contains("offline_access"),
        "{url}"
    );
    // The browser: the identity platform consents and redirects to the loopback listener.
    let page = reqwest::get(&url).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("authorized"));
    let stdout = reader.await.unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    (
        out.status.success(),
        format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_delegated_authorize_then_sync_with_rotating_refresh_tokens() {
    let s = TestSim::start(small()).await;
    let admin_upn = s.sim.world.lock().unwrap().tenants[0].admin_upn.clone();
    let person = s.mailbox(1)["upn"].as_str().unwrap().to_string();
    for db in TestDb::both().await {
        let a = Admin::new(db).await;
        let mut outputs = Vec::new();
        let r = a
            .run_env(
                &[
                    "tenant",
                    "add",
                    "--org",
                    "acme",
                    "--name",
                    "main",
                    "--ms-tenant",
                    &s.tenant_id,
                    "--client-id",
                    &s.client_id,
                    "--secret-env",
                    "SECRET",
                    "--authority",
                    &s.base,
                    "--graph-url",
                    &s.graph,
                    "--delegated",
                ],
                &[("SECRET", &s.secret)],
            )
            .await;
        assert!(r.ok && r.stdout.contains("tenant authorize"), "{}", r.all());
        outputs.push(r.all());
        // Before anyone consents, the test says what to do.
        let r = a
            .run(&["tenant", "test", "--org", "acme", "--tenant", "main"])
            .await;
        assert!(
            !r.ok && r.all().contains("m365sync tenant authorize"),
            "{}",
            r.all()
        );
        outputs.push(r.all());
        let (ok, out) = authorize(&a, &admin_upn).await;
        assert!(ok && out.contains("authorized tenant acme/main"), "{out}");
        outputs.push(out);
        let t = a.store.tenant("acme", "main").await.unwrap();
        let first = refresh_token(&a.store, t.id).await;
        // The refresh token is sealed: the database's bytes do not contain it.
        let raw: Vec<u8> = sqlx::query_scalar(
            "SELECT ciphertext FROM tenant_secrets WHERE kind = 'refresh_token'",
        )
        .fetch_one(&sqlx::AnyPool::connect(&a.db.url).await.unwrap())
        .await
        .unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains(&first));
        // A delegated token works, and the rotated refresh token is stored.
        let r = a
            .run(&[
                "tenant",
                "test",
                "--org",
                "acme",
                "--tenant",
                "main",
                "--mailbox",
                &person,
            ])
            .await;
        assert!(
            r.ok && r.stdout.contains(&format!(
                "delegated token (refresh token grant) for {admin_upn}"
            )),
            "{}",
            r.all()
        );
        outputs.push(r.all());
        let second = refresh_token(&a.store, t.id).await;
        assert_ne!(
            first, second,
            "the rotated refresh token replaced the first"
        );
        // A sync run authenticates the same way and rotates again.
        assert!(
            a.run(&[
                "mailbox",
                "add",
                "--org",
                "acme",
                "--tenant",
                "main",
                "--address",
                &person
            ])
            .await
            .ok
        );
        let r = a
            .run(&["sync", "run", "--org", "acme", "--tenant", "main", "--json"])
            .await;
        assert!(r.ok, "{}", r.all());
        assert!(r.json()["synced"].as_u64().unwrap() > 0, "{}", r.all());
        outputs.push(r.all());
        let third = refresh_token(&a.store, t.id).await;
        assert_ne!(second, third);
        // Revoked refresh tokens are named, with what to do.
        s.ctl(
            Method::POST,
            "refresh-tokens/expire",
            json!({"tenant": s.tenant_id}),
        )
        .await;
        let r = a
            .run(&[
                "tenant", "test", "--org", "acme", "--tenant", "main", "--json",
            ])
            .await;
        assert!(!r.ok);
        let v = r.json();
        assert_eq!(v["steps"][0]["failure"]["kind"], "refresh_expired", "{v}");
        assert_eq!(v["steps"][0]["failure"]["code"], 700082);
        outputs.push(r.all());
        for out in &outputs {
            for secret in [&s.secret, &first, &second, &third] {
                assert!(!out.contains(secret.as_str()), "a secret leaked: {out}");
            }
        }
        a.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_authorize_refuses_an_app_only_tenant() {
    let s = TestSim::start(small()).await;
    let a = Admin::new(TestDb::sqlite().await).await;
    let r = a
        .run_env(
            &[
                "tenant",
                "add",
                "--org",
                "acme",
                "--name",
                "main",
                "--ms-tenant",
                &s.tenant_id,
                "--client-id",
                &s.client_id,
                "--secret-env",
                "SECRET",
                "--authority",
                &s.base,
                "--graph-url",
                &s.graph,
            ],
            &[("SECRET", &s.secret)],
        )
        .await;
    assert!(r.ok, "{}", r.all());
    let r = a
        .run(&[
            "tenant",
            "authorize",
            "--org",
            "acme",
            "--tenant",
            "main",
            "--no-browser",
        ])
        .await;
    assert!(!r.ok && r.stderr.contains("app-only"), "{}", r.all());
    a.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_authorize_accepts_the_pasted_redirect_address() {
    use std::io::Write;
    let s = TestSim::start(small()).await;
    let a = Admin::new(TestDb::sqlite().await).await;
    let r = a
        .run_env(
            &[
                "tenant",
                "add",
                "--org",
                "acme",
                "--name",
                "main",
                "--ms-tenant",
                &s.tenant_id,
                "--client-id",
                &s.client_id,
                "--secret-env",
                "SECRET",
                "--authority",
                &s.base,
                "--graph-url",
                &s.graph,
                "--delegated",
            ],
            &[("SECRET", &s.secret)],
        )
        .await;
    assert!(r.ok, "{}", r.all());
    let mut child = a
        .command(&[
            "tenant",
            "authorize",
            "--org",
            "acme",
            "--tenant",
            "main",
            "--no-browser",
            "--timeout-secs",
            "60",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let url = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines().map(Result::unwrap);
        let url = lines
            .find(|l| l.contains("/oauth2/v2.0/authorize?"))
            .unwrap();
        // Keep reading, so the command's later output has somewhere to go.
        std::thread::spawn(move || lines.for_each(drop));
        url
    })
    .await
    .unwrap();
    // The browser is elsewhere: it ends on an address this machine's listener never sees.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = no_redirects.get(url.trim()).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with("http://127.0.0.1:") && location.contains("code="));
    writeln!(stdin, "{location}").unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = a.store.tenant("acme", "main").await.unwrap();
    refresh_token(&a.store, t.id).await;
    a.finish().await;
}
