//! The identity platform: discovery, client credentials, auth code + PKCE, refresh tokens,
//! Entra's error shapes, token expiry and tenant isolation.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use m365sync_sim::generate::GenerateOptions;
use reqwest::Method;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::client::{enc, small, TestSim};

#[tokio::test]
async fn discovery_names_the_endpoints_real_clients_need() {
    let s = TestSim::start(small()).await;
    let doc: serde_json::Value = s
        .http
        .get(format!(
            "{}/{}/v2.0/.well-known/openid-configuration",
            s.base, s.tenant_id
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for key in [
        "token_endpoint",
        "authorization_endpoint",
        "issuer",
        "jwks_uri",
        "response_types_supported",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
    ] {
        assert!(doc.get(key).is_some(), "missing {key}");
    }
    assert_eq!(
        doc["token_endpoint"],
        format!("{}/{}/oauth2/v2.0/token", s.base, s.tenant_id)
    );
    let status = s
        .http
        .get(format!(
            "{}/nosuchtenant.example/v2.0/.well-known/openid-configuration",
            s.base
        ))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 400);
}

#[tokio::test]
async fn client_credentials_with_form_basic_and_query_string() {
    let s = TestSim::start(small()).await;
    // MSAL adds ?client-request-id=... and azure-identity adds fields such as `claims`.
    let resp = s
        .http
        .post(format!(
            "{}/{}/oauth2/v2.0/token?client-request-id=0000",
            s.base, s.tenant_id
        ))
        .form(&[
            ("client_id", s.client_id.as_str()),
            ("client_secret", &s.secret),
            ("scope", "https://graph.microsoft.com/.default"),
            ("grant_type", "client_credentials"),
            (
                "claims",
                r#"{"access_token":{"xms_cc":{"values":["CP1"]}}}"#,
            ),
            ("client_info", "1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("no-store"));
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert!(body["ext_expires_in"].is_number());
    // HTTP Basic credentials, and the tenant's domain instead of its id.
    let resp = s
        .http
        .post(format!("{}/contoso.example/oauth2/v2.0/token", s.base))
        .basic_auth(&s.client_id, Some(&s.secret))
        .form(&[
            ("scope", "https://graph.microsoft.com/.default"),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn token_errors_carry_entra_codes() {
    let s = TestSim::start(small()).await;
    let scope = "https://graph.microsoft.com/.default";
    let (status, body) = s
        .token_request(
            &s.tenant_id,
            &[
                ("client_id", &s.client_id),
                ("client_secret", "wrong"),
                ("scope", scope),
                ("grant_type", "client_credentials"),
            ],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str().unwrap()),
        (401, "invalid_client")
    );
    assert_eq!(body["error_codes"][0], 7000215);
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .starts_with("AADSTS7000215: "));
    for key in ["timestamp", "trace_id", "correlation_id", "error_uri"] {
        assert!(body.get(key).is_some(), "missing {key}");
    }
    let (status, body) = s
        .token_request(
            &s.tenant_id,
            &[
                ("client_id", "00000000-0000-0000-0000-000000000000"),
                ("client_secret", "x"),
                ("scope", scope),
                ("grant_type", "client_credentials"),
            ],
        )
        .await;
    assert_eq!(
        (
            status,
            body["error"].as_str().unwrap(),
            body["error_codes"][0].as_u64().unwrap()
        ),
        (400, "unauthorized_client", 700016)
    );
    let (_, body) = s
        .token_request(
            &s.tenant_id,
            &[
                ("client_id", &s.client_id),
                ("scope", scope),
                ("grant_type", "client_credentials"),
            ],
        )
        .await;
    assert_eq!(body["error_codes"][0], 7000218);
    let (_, body) = s
        .token_request(
            "unknown.example",
            &[
                ("client_id", &s.client_id),
                ("client_secret", &s.secret),
                ("scope", scope),
                ("grant_type", "client_credentials"),
            ],
        )
        .await;
    assert_eq!(body["error_codes"][0], 90002);
}

#[tokio::test]
async fn several_secrets_are_valid_and_a_revoked_one_stops_working() {
    let s = TestSim::start(small()).await;
    let second = s.sim.world.lock().unwrap().tenants[0].apps[0].secrets[1]
        .value
        .clone();
    let scope = "https://graph.microsoft.com/.default";
    for secret in [&s.secret, &second] {
        let (status, _) = s
            .token_request(
                &s.tenant_id,
                &[
                    ("client_id", &s.client_id),
                    ("client_secret", secret),
                    ("scope", scope),
                    ("grant_type", "client_credentials"),
                ],
            )
            .await;
        assert_eq!(status, 200);
    }
    let added = s
        .ctl(
            Method::POST,
            "secrets/add",
            json!({"tenant": s.tenant_id, "client_id": s.client_id}),
        )
        .await;
    s.ctl(
        Method::POST,
        "secrets/revoke",
        json!({"tenant": s.tenant_id, "client_id": s.client_id, "secret": s.secret}),
    )
    .await;
    let (status, body) = s
        .token_request(
            &s.tenant_id,
            &[
                ("client_id", &s.client_id),
                ("client_secret", &s.secret),
                ("scope", scope),
                ("grant_type", "client_credentials"),
            ],
        )
        .await;
    assert_eq!(
        (status, body["error_codes"][0].as_u64().unwrap()),
        (401, 7000215)
    );
    let (status, _) = s
        .token_request(
            &s.tenant_id,
            &[
                ("client_id", &s.client_id),
                ("client_secret", added["secret"].as_str().unwrap()),
                ("scope", scope),
                ("grant_type", "client_credentials"),
            ],
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn expired_tokens_get_invalid_authentication_token() {
    let s = TestSim::start(small()).await;
    let token = s.token().await;
    let url = format!("{}/users", s.graph);
    assert_eq!(s.get(&url, &token, "").await.0, 200);
    s.ctl(Method::POST, "tokens/expire", json!({})).await;
    let (status, headers, body) = s.get(&url, &token, "").await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
    assert!(headers.contains_key("www-authenticate"));
    assert!(body["error"]["innerError"]["request-id"].is_string());
    let (status, _, body) = s.get(&url, "not-a-token", "").await;
    assert_eq!(
        (status, body["error"]["code"].as_str().unwrap()),
        (401, "InvalidAuthenticationToken")
    );
    // A token fetched right after the expiry works at once.
    let fresh = s.token().await;
    assert_eq!(s.get(&url, &fresh, "").await.0, 200);
}

#[tokio::test]
async fn authorization_code_with_pkce_then_refresh() {
    let s = TestSim::start(small()).await;
    let verifier = "a-long-random-verifier-string-of-at-least-43-characters-xyz";
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let redirect = "http://localhost/callback";
    let scope = "offline_access https://graph.microsoft.com/Mail.ReadWrite https://graph.microsoft.com/User.Read.All";
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = no_redirects
        .get(format!("{}/{}/oauth2/v2.0/authorize", s.base, s.tenant_id))
        .query(&[
            ("client_id", s.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", redirect),
            ("scope", scope),
            ("state", "st8"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let location = reqwest::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(redirect));
    let q: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(q["state"], "st8");
    let code = q["code"].clone();
    let exchange = |verifier: &'static str| {
        let code = code.clone();
        let s = &s;
        async move {
            s.token_request(
                &s.tenant_id,
                &[
                    ("client_id", &s.client_id),
                    ("client_secret", &s.secret),
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", redirect),
                    ("code_verifier", verifier),
                    ("scope", scope),
                ],
            )
            .await
        }
    };
    let (status, body) = exchange("the-wrong-verifier-the-wrong-verifier-the-wrong").await;
    assert_eq!(
        (status, body["error_codes"][0].as_u64().unwrap()),
        (400, 501481)
    );
    let (status, body) = exchange(verifier).await;
    assert_eq!(status, 200, "{body}");
    let refresh = body["refresh_token"].as_str().unwrap().to_string();
    let access = body["access_token"].as_str().unwrap().to_string();
    // The code works once.
    let (_, again) = exchange(verifier).await;
    assert_eq!(again["error_codes"][0], 54005);
    // A delegated token reads the signed-in admin's own mailbox through /me.
    let (status, _, me) = s.get(&format!("{}/me", s.graph), &access, "").await;
    assert_eq!(status, 200);
    assert_eq!(me["userPrincipalName"], "admin@contoso.example");
    let (status, body) = s
        .token_request(
            &s.tenant_id,
            &[
                ("client_id", &s.client_id),
                ("client_secret", &s.secret),
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh),
                ("scope", scope),
            ],
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        body["refresh_token"].as_str().is_some_and(|r| r != refresh),
        "a new refresh token each time"
    );
    s.ctl(Method::POST, "refresh-tokens/expire", json!({}))
        .await;
    let (status, body) = s
        .token_request(
            &s.tenant_id,
            &[
                ("client_id", &s.client_id),
                ("client_secret", &s.secret),
                ("grant_type", "refresh_token"),
                ("refresh_token", body["refresh_token"].as_str().unwrap()),
                ("scope", scope),
            ],
        )
        .await;
    assert_eq!(
        (
            status,
            body["error"].as_str().unwrap(),
            body["error_codes"][0].as_u64().unwrap()
        ),
        (400, "invalid_grant", 700082)
    );
}

#[tokio::test]
async fn a_token_of_tenant_a_never_opens_tenant_b() {
    let s = TestSim::start(GenerateOptions {
        tenants: 2,
        ..small()
    })
    .await;
    let token = s.token().await;
    let other = s.truth()["tenants"][1].clone();
    let b_user = other["mailboxes"][1]["upn"].as_str().unwrap().to_string();
    let b_id = other["mailboxes"][1]["id"].as_str().unwrap().to_string();
    for who in [&b_user, &b_id] {
        let (status, _, body) = s
            .get(
                &format!(
                    "{}/users/{}/mailFolders/inbox/messages/delta",
                    s.graph,
                    enc(who)
                ),
                &token,
                "",
            )
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str().unwrap()),
            (404, "ErrorInvalidUser")
        );
        let (status, _, _) = s
            .get(&format!("{}/users/{}", s.graph, enc(who)), &token, "")
            .await;
        assert_eq!(status, 404);
    }
    // A message id of tenant B is not found through tenant A's mailbox either.
    let b_msg = other["mailboxes"][1]["folders"]["inbox"]["ids"][0]
        .as_str()
        .unwrap();
    let a_user = s.mailbox(1)["upn"].as_str().unwrap().to_string();
    let (status, _, _) = s
        .get(
            &format!("{}/users/{}/messages/{}", s.graph, enc(&a_user), enc(b_msg)),
            &token,
            "",
        )
        .await;
    assert_eq!(status, 404);
    let (_, _, users) = s.get(&format!("{}/users", s.graph), &token, "").await;
    assert!(users["value"]
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["userPrincipalName"]
            .as_str()
            .unwrap()
            .ends_with("@contoso.example")));
}
