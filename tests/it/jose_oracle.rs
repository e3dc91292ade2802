//! panva's `jose` (Node, pinned in `tests/oracles/package-lock.json`, run through
//! `tests/oracles/jose.js`) as an outside oracle for the platform's JWTs: without it the
//! session tokens are only checked by the code that signs them, and the relying party only
//! against the simulator built beside it. Here a third party verifies what the platform signs
//! and signs what the platform verifies. `scripts/stack up` installs it; without it the tests
//! fail, they never skip.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tcom_ingress::identity::broker::{BrokerError, Brokers, Discovery};
use tcom_schemas::tenant::IdentitySettings;

use crate::identity::{IdentityShop, token_of};

const ORACLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/oracles");

/// Runs `node tests/oracles/jose.js <command>` with `request` on stdin.
fn jose(command: &str, request: &Value) -> Value {
    let installed = Path::new(ORACLES).join("node_modules/jose/package.json");
    assert!(
        installed.is_file(),
        "{} is missing: run `scripts/stack up`, which installs the oracles' Node libraries \
         (npm ci in tests/oracles)",
        installed.display()
    );
    let mut child = Command::new("node")
        .arg(Path::new(ORACLES).join("jose.js"))
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `node` ({e}): run `scripts/stack up`"));
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(request.to_string().as_bytes()).unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "jose.js {command}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

async fn published_keys(s: &IdentityShop) -> Value {
    s.shop
        .call(Method::GET, "/.well-known/jwks.json", None, None)
        .await
        .body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jose_verifies_a_shops_session_token_with_the_shops_jwks_and_no_other() {
    let a = IdentityShop::open(None).await;
    let b = IdentityShop::open(None).await;
    let session = a.sign_in("adult").await;
    let a_keys = published_keys(&a).await;
    let b_keys = published_keys(&b).await;
    let request = |keys: &Value, issuer: String| {
        json!({"token": token_of(&session), "jwks": keys, "issuer": issuer,
               "audience": "tcom-storefront", "algorithms": ["ES256"]})
    };
    let verified = jose(
        "verify",
        &request(&a_keys, format!("tcom/{}", a.shop.tenant)),
    );
    assert_eq!(verified["ok"], true, "{verified}");
    assert_eq!(verified["payload"]["sub"], session["customer_id"]);
    assert_eq!(verified["payload"]["tenant"], a.shop.tenant.as_str());
    assert_eq!(verified["header"]["alg"], "ES256");
    // With B's keys, or as B's issuer, it does not verify.
    let with_b = jose(
        "verify",
        &request(&b_keys, format!("tcom/{}", a.shop.tenant)),
    );
    assert_eq!(with_b["ok"], false, "{with_b}");
    assert_eq!(with_b["code"], "ERR_JWKS_NO_MATCHING_KEY");
    let as_b = jose(
        "verify",
        &request(&a_keys, format!("tcom/{}", b.shop.tenant)),
    );
    assert_eq!(as_b["code"], "ERR_JWT_CLAIM_VALIDATION_FAILED", "{as_b}");
}

/// Serves `jwks` at `/jwks` on a free port; returns the discovery the relying party uses.
async fn broker_serving(jwks: Value, issuer: &str) -> Discovery {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let jwks = jwks.clone();
            async move { axum::Json(jwks) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Discovery {
        issuer: issuer.to_owned(),
        authorization_endpoint: format!("http://{address}/authorize"),
        token_endpoint: format!("http://{address}/token"),
        jwks_uri: format!("http://{address}/jwks"),
        cpr_match_endpoint: None,
    }
}

#[tokio::test]
async fn id_tokens_jose_signs_verify_in_the_relying_party_and_every_bad_one_is_refused() {
    let issuer = "https://broker.example/realms/shop";
    let settings = IdentitySettings {
        issuer: issuer.into(),
        client_id: "shop".into(),
        client_secret_ref: "env://UNUSED".into(),
        scopes: vec!["openid".into()],
        cpr_matching: true,
        owner_verification: None,
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = |change: &dyn Fn(&mut Value)| {
        let mut c = json!({"iss": issuer, "aud": "shop", "sub": "person-1", "nonce": "n-1",
            "iat": now, "exp": now + 300, "idp": "mitid", "name": "Freja Nielsen",
            "loa": "https://data.gov.dk/concept/core/nsis/loa/Substantial"});
        change(&mut c);
        c
    };
    let brokers = Brokers::new(Duration::from_secs(5));
    for alg in ["RS256", "ES256"] {
        let signed = jose(
            "sign",
            &json!({"alg": alg, "kid": format!("{alg}-key"), "claims": claims(&|_| {})}),
        );
        let discovery = broker_serving(signed["jwks"].clone(), issuer).await;
        let person = brokers
            .verify_id_token(
                &discovery,
                &settings,
                signed["token"].as_str().unwrap(),
                "n-1",
            )
            .await
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(person.subject, "person-1");
        assert_eq!(person.assurance.as_deref(), Some("substantial"));
        assert_eq!(person.name.as_deref(), Some("Freja Nielsen"));
    }
    type Change = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, &str, Change, &str)> = vec![
        ("PS256", "an algorithm not allowed", Box::new(|_| {}), "n-1"),
        (
            "RS256",
            "another audience",
            Box::new(|c| c["aud"] = json!("other")),
            "n-1",
        ),
        (
            "RS256",
            "another issuer",
            Box::new(|c| c["iss"] = json!("https://evil.example")),
            "n-1",
        ),
        (
            "RS256",
            "expired",
            Box::new(move |c| c["exp"] = json!(now - 120)),
            "n-1",
        ),
        (
            "RS256",
            "no subject",
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("sub");
            }),
            "n-1",
        ),
        ("ES256", "another sign-in's nonce", Box::new(|_| {}), "n-2"),
    ];
    for (alg, why, change, nonce) in cases {
        let signed = jose(
            "sign",
            &json!({"alg": alg, "kid": format!("{alg}-bad"), "claims": claims(&*change)}),
        );
        let discovery = broker_serving(signed["jwks"].clone(), issuer).await;
        let refused = brokers
            .verify_id_token(
                &discovery,
                &settings,
                signed["token"].as_str().unwrap(),
                nonce,
            )
            .await;
        assert!(
            matches!(refused, Err(BrokerError::TokenRejected(_))),
            "{why}: {refused:?}"
        );
    }
}
