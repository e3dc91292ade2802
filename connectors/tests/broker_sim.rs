//! The MitID broker simulator (`tcom oidc-sim`) seen from a relying party: started in-process
//! on a free port and driven over HTTP without following redirects. ID tokens are checked
//! with `jsonwebtoken` against the JWKS the simulator publishes, the way the platform will.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tcom_connectors::identity::broker_sim::{self, TEST_USERS, TestUser};
use tcom_processors::domain::cpr::Cpr;

const CLIENT: &str = "nordlys-web";
const SECRET: &str = "s3cret:with/odd+chars";
const REDIRECT: &str = "https://nordlys.localhost/auth/callback";

/// A running simulator with one realm of its own and a registered client.
struct Broker {
    base: String,
    realm: String,
    http: reqwest::Client,
}

impl Broker {
    async fn start() -> Self {
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(broker_sim::serve(
            "127.0.0.1:0".parse().unwrap(),
            std::future::pending(),
            move |address| {
                let _ = tx.send(address);
            },
        ));
        let base = format!("http://{}", rx.await.unwrap());
        let realm = format!("t-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let broker = Self { base, realm, http };
        broker.register(CLIENT, SECRET, &[REDIRECT]).await;
        broker
    }

    fn issuer(&self) -> String {
        format!("{}/realms/{}", self.base, self.realm)
    }

    async fn register(&self, client: &str, secret: &str, redirect_uris: &[&str]) {
        let url = format!("{}/_sim/realms/{}/clients/{client}", self.base, self.realm);
        let body = json!({"client_secret": secret, "redirect_uris": redirect_uris});
        let response = self.http.put(url).json(&body).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }

    async fn sim_post(&self, action: &str, body: Value) -> (StatusCode, String) {
        let url = format!("{}/_sim/realms/{}/{action}", self.base, self.realm);
        let response = self.http.post(url).json(&body).send().await.unwrap();
        (response.status(), response.text().await.unwrap())
    }

    async fn rotate(&self, retire_old: bool) -> String {
        let (status, body) = self
            .sim_post("rotate-keys", json!({"retire_old": retire_old}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        body["kid"].as_str().unwrap().to_owned()
    }

    async fn tamper(&self, tamper: Value) {
        let (status, body) = self.sim_post("tamper", tamper).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }

    async fn get_json(&self, url: String) -> Value {
        let response = self.http.get(url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    async fn jwks(&self) -> Value {
        self.get_json(format!("{}/jwks", self.issuer())).await
    }

    async fn kids(&self) -> Vec<String> {
        self.jwks().await["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    }

    async fn authorize(&self, params: &[(&str, &str)]) -> reqwest::Response {
        let url = format!("{}/authorize", self.issuer());
        self.http.get(url).query(params).send().await.unwrap()
    }

    async fn authorize_post(&self, params: &[(&str, &str)]) -> reqwest::Response {
        let url = format!("{}/authorize", self.issuer());
        self.http.post(url).form(params).send().await.unwrap()
    }

    /// Logs `user` in with `login_hint`; returns the code from the redirect.
    async fn login(&self, user: &str, pkce: &Pkce, nonce: &str) -> String {
        let mut params = auth_params(&pkce.challenge, nonce);
        params.push(("login_hint", user));
        let response = self.authorize(&params).await;
        let query = redirect_query(&response);
        assert_eq!(query.get("state").map(String::as_str), Some("st-1"));
        assert_eq!(query.get("iss"), Some(&self.issuer()));
        query
            .get("code")
            .unwrap_or_else(|| panic!("no code: {query:?}"))
            .clone()
    }

    /// Exchanges a code with client_secret_basic (id and secret form-encoded first).
    async fn exchange(&self, code: &str, verifier: &str, secret: &str) -> (StatusCode, Value) {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ];
        let id = form_encode(CLIENT);
        let secret = form_encode(secret);
        let response = self
            .http
            .post(format!("{}/token", self.issuer()))
            .basic_auth(id, Some(secret))
            .form(&form)
            .send()
            .await
            .unwrap();
        let status = response.status();
        if status == StatusCode::OK {
            let cache = response.headers()["cache-control"].to_str().unwrap();
            assert_eq!(cache, "no-store");
        }
        (status, response.json().await.unwrap())
    }

    /// A whole login of `user`: the token response.
    async fn tokens(&self, user: &str) -> Value {
        let pkce = Pkce::new();
        let code = self.login(user, &pkce, "nonce-1").await;
        let (status, body) = self.exchange(&code, &pkce.verifier, SECRET).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    async fn cpr_match(&self, access_token: &str, cpr: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}/cpr-match", self.issuer()))
            .bearer_auth(access_token)
            .json(&json!({ "cpr": cpr }))
            .send()
            .await
            .unwrap();
        (response.status(), response.json().await.unwrap())
    }
}

struct Pkce {
    verifier: String,
    challenge: String,
}

impl Pkce {
    fn new() -> Self {
        let verifier = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        Self {
            verifier,
            challenge,
        }
    }
}

fn auth_params<'a>(challenge: &'a str, nonce: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", CLIENT),
        ("redirect_uri", REDIRECT),
        ("scope", "openid mitid"),
        ("state", "st-1"),
        ("nonce", nonce),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]
}

fn form_encode(text: &str) -> String {
    serde_urlencoded::to_string([("v", text)]).unwrap()[2..].to_owned()
}

/// The query of a 302 to the registered redirect URI.
fn redirect_query(response: &reqwest::Response) -> HashMap<String, String> {
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = response.headers()["location"].to_str().unwrap();
    let query = location
        .strip_prefix(&format!("{REDIRECT}?"))
        .unwrap_or_else(|| panic!("not to the redirect URI: {location}"));
    serde_urlencoded::from_str(query).unwrap()
}

/// The JOSE header of a compact JWT, whatever its algorithm.
fn jwt_header(token: &str) -> Value {
    let header = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap()
}

fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// Verifies an ID token as a relying party does: RS256 only, the key by `kid` from the JWKS,
/// issuer, audience and expiry checked.
fn verify(id_token: &str, jwks: &Value, issuer: &str) -> Result<Value, String> {
    let header = jsonwebtoken::decode_header(id_token).map_err(|e| e.to_string())?;
    if header.alg != Algorithm::RS256 {
        return Err(format!("alg {:?}", header.alg));
    }
    let kid = header.kid.ok_or("no kid")?;
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .ok_or("kid not in the JWKS")?;
    assert_eq!(jwk["kty"], "RSA");
    assert_eq!(jwk["use"], "sig");
    assert_eq!(jwk["alg"], "RS256");
    let key =
        DecodingKey::from_rsa_components(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap())
            .map_err(|e| e.to_string())?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[CLIENT]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    jsonwebtoken::decode::<Value>(id_token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn discovery_document() {
    let broker = Broker::start().await;
    let iss = broker.issuer();
    let doc = broker
        .get_json(format!("{iss}/.well-known/openid-configuration"))
        .await;
    assert_eq!(doc["issuer"], iss.as_str());
    assert_eq!(doc["authorization_endpoint"], format!("{iss}/authorize"));
    assert_eq!(doc["token_endpoint"], format!("{iss}/token"));
    assert_eq!(doc["jwks_uri"], format!("{iss}/jwks"));
    assert_eq!(doc["userinfo_endpoint"], format!("{iss}/userinfo"));
    assert_eq!(doc["cpr_match_endpoint"], format!("{iss}/cpr-match"));
    assert_eq!(doc["response_types_supported"], json!(["code"]));
    assert_eq!(doc["subject_types_supported"], json!(["public"]));
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        json!(["RS256"])
    );
    assert_eq!(
        doc["scopes_supported"],
        json!(["openid", "mitid", "ssn", "nin", "profile"])
    );
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
    let claims = doc["claims_supported"].as_array().unwrap();
    for claim in ["sub", "nonce", "loa", "birthdate", "name", "idp", "amr"] {
        assert!(claims.contains(&json!(claim)), "{claim}");
    }

    let jwks = broker.jwks().await;
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["e"], "AQAB");
    let modulus = URL_SAFE_NO_PAD
        .decode(keys[0]["n"].as_str().unwrap())
        .unwrap();
    assert_eq!(modulus.len(), 256, "RSA-2048");

    // Realm names are restricted; another realm is another issuer with other keys.
    let bad = broker
        .http
        .get(format!("{}/realms/Bad_Realm/jwks", broker.base))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::NOT_FOUND);
    let other = broker
        .get_json(format!(
            "{}/realms/other-{}/jwks",
            broker.base, broker.realm
        ))
        .await;
    assert_ne!(other["keys"][0]["kid"], keys[0]["kid"]);
}

#[tokio::test]
async fn code_flow_with_pkce_and_a_verified_id_token() {
    let broker = Broker::start().await;
    let pkce = Pkce::new();
    let code = broker.login("adult", &pkce, "nonce-42").await;
    let (status, tokens) = broker.exchange(&code, &pkce.verifier, SECRET).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 300);
    assert_eq!(tokens["scope"], "openid mitid");
    let access_token = tokens["access_token"].as_str().unwrap();
    let id_token = tokens["id_token"].as_str().unwrap();

    let claims = verify(id_token, &broker.jwks().await, &broker.issuer()).unwrap();
    assert_eq!(claims["iss"], broker.issuer());
    assert_eq!(claims["aud"], CLIENT);
    assert_eq!(claims["nonce"], "nonce-42");
    assert_eq!(
        claims["loa"],
        "https://data.gov.dk/concept/core/nsis/loa/Substantial"
    );
    assert_eq!(claims["idp"], "mitid");
    assert_eq!(claims["amr"], json!(["mitid"]));
    assert_eq!(claims["name"], "Freja Nielsen");
    assert_eq!(claims["given_name"], "Freja");
    assert_eq!(claims["family_name"], "Nielsen");
    assert_eq!(claims["birthdate"], "1990-03-14");
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(claims["exp"].as_i64().unwrap(), iat + 300);
    assert!(claims["auth_time"].as_i64().unwrap() <= iat);
    let at_hash = URL_SAFE_NO_PAD.encode(&Sha256::digest(access_token.as_bytes())[..16]);
    assert_eq!(claims["at_hash"], at_hash);
    let sub = claims["sub"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(sub).is_ok());
    let text = claims.to_string();
    assert!(!text.contains("1403902086") && !text.contains("140390-2086"));

    // The same person gets the same subject on the next login.
    let again = broker.tokens("adult").await;
    assert_eq!(jwt_claims(again["id_token"].as_str().unwrap())["sub"], sub);

    let info: Value = broker
        .http
        .get(format!("{}/userinfo", broker.issuer()))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["sub"], sub);
    assert_eq!(info["name"], "Freja Nielsen");
    assert_eq!(info["birthdate"], "1990-03-14");
    assert_eq!(info["loa"], claims["loa"]);
    assert!(info.get("cpr").is_none());

    // The code is single-use; presenting it again also revokes the token it bought.
    let (status, replay) = broker.exchange(&code, &pkce.verifier, SECRET).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(replay["error"], "invalid_grant");
    let revoked = broker
        .http
        .get(format!("{}/userinfo", broker.issuer()))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        revoked.headers()["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
}

#[tokio::test]
async fn client_secret_post_works_too() {
    let broker = Broker::start().await;
    let pkce = Pkce::new();
    let code = broker.login("adult-high", &pkce, "n").await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", pkce.verifier.as_str()),
        ("client_id", CLIENT),
        ("client_secret", SECRET),
    ];
    let response = broker
        .http
        .post(format!("{}/token", broker.issuer()))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.unwrap();
    let claims = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(
        claims["loa"],
        "https://data.gov.dk/concept/core/nsis/loa/High"
    );
}

#[tokio::test]
async fn wrong_verifier_is_invalid_grant() {
    let broker = Broker::start().await;
    let pkce = Pkce::new();
    let code = broker.login("adult", &pkce, "n").await;
    let (status, body) = broker.exchange(&code, &Pkce::new().verifier, SECRET).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    // The failed attempt spent the code.
    let (status, body) = broker.exchange(&code, &pkce.verifier, SECRET).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn token_endpoint_errors() {
    let broker = Broker::start().await;
    let pkce = Pkce::new();
    let code = broker.login("adult", &pkce, "n").await;
    let (status, body) = broker.exchange(&code, &pkce.verifier, "wrong").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");

    let token_url = format!("{}/token", broker.issuer());
    let post = |form: Vec<(&'static str, String)>| {
        let request = broker.http.post(&token_url).form(&form);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let auth = |extra: &[(&'static str, &str)]| {
        let mut form = vec![
            ("client_id", CLIENT.to_owned()),
            ("client_secret", SECRET.to_owned()),
        ];
        form.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        form
    };
    let (status, body) = post(auth(&[("grant_type", "client_credentials")])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "unsupported_grant_type");
    let (status, body) = post(auth(&[("grant_type", "authorization_code")])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_request", "no code");
    let (status, body) = post(vec![("grant_type", "authorization_code".into())]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client", "no client authentication");

    // The code was not spent by the refused client: the right one can still use it.
    let (status, body) = broker.exchange(&code, &pkce.verifier, SECRET).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A code for another redirect URI of the same client.
    let second = "https://nordlys.localhost/auth/other";
    broker.register(CLIENT, SECRET, &[REDIRECT, second]).await;
    let pkce = Pkce::new();
    let code = broker.login("adult", &pkce, "n").await;
    let (status, body) = post(auth(&[
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", second),
        ("code_verifier", pkce.verifier.as_str()),
    ]))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn unregistered_redirect_uri_gets_a_page_not_a_redirect() {
    let broker = Broker::start().await;
    let pkce = Pkce::new();
    let mut params = auth_params(&pkce.challenge, "n");
    params[2] = ("redirect_uri", "https://evil.example/steal");
    let response = broker.authorize(&params).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get("location").is_none());
    let html = response.text().await.unwrap();
    assert!(html.contains("redirect_uri is not registered"), "{html}");

    let mut params = auth_params(&pkce.challenge, "n");
    params[1] = ("client_id", "nobody");
    let response = broker.authorize(&params).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get("location").is_none());
}

#[tokio::test]
async fn bad_parameters_go_back_to_the_client() {
    let broker = Broker::start().await;
    let pkce = Pkce::new();
    let cases: [(&str, Option<&str>, &str); 5] = [
        ("nonce", None, "invalid_request"),
        ("code_challenge", None, "invalid_request"),
        ("code_challenge_method", Some("plain"), "invalid_request"),
        ("scope", Some("mitid"), "invalid_request"),
        ("response_type", Some("token"), "unsupported_response_type"),
    ];
    for (name, value, error) in cases {
        let mut params = auth_params(&pkce.challenge, "n");
        params.retain(|(k, _)| *k != name);
        if let Some(value) = value {
            params.push((name, value));
        }
        let query = redirect_query(&broker.authorize(&params).await);
        assert_eq!(query["error"], error, "{name}");
        assert_eq!(query["state"], "st-1", "{name}");
        assert!(!query["error_description"].is_empty());
        assert!(!query.contains_key("code"));
    }
}

#[tokio::test]
async fn picker_lists_every_test_user_and_posts_back() {
    let broker = Broker::start().await;
    let pkce = Pkce::new();
    let params = auth_params(&pkce.challenge, "n");
    let response = broker.authorize(&params).await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    assert!(html.starts_with("<!doctype html>"));
    assert!(html.contains("<html lang=\"en\">"));
    for user in &TEST_USERS {
        assert!(
            html.contains(&format!(r#"name="user" value="{}""#, user.id)),
            "{}",
            user.id
        );
        assert!(html.contains(&user.name()));
    }
    assert!(html.contains(r#"name="user" value="cancel""#));
    assert!(html.contains(&format!(r#"value="{}""#, pkce.challenge)));

    // Choosing in the picker is a POST of the same parameters plus `user`.
    let mut chosen = params.clone();
    chosen.push(("user", "minor"));
    let query = redirect_query(&broker.authorize_post(&chosen).await);
    assert!(query.contains_key("code"));
    let (status, tokens) = broker
        .exchange(&query["code"], &pkce.verifier, SECRET)
        .await;
    assert_eq!(status, StatusCode::OK);
    let claims = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(claims["birthdate"], "2010-06-15");

    let mut cancel = params.clone();
    cancel.push(("user", "cancel"));
    let query = redirect_query(&broker.authorize_post(&cancel).await);
    assert_eq!(query["error"], "access_denied");
    assert_eq!(query["state"], "st-1");

    let mut unknown = params.clone();
    unknown.push(("user", "nobody"));
    let response = broker.authorize_post(&unknown).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let html = response.text().await.unwrap();
    assert!(html.contains("role=\"alert\""));
    assert!(html.contains(r#"value="adult""#), "the picker again");

    let mut hint = params.clone();
    hint.push(("login_hint", "nobody"));
    assert_eq!(
        broker.authorize(&hint).await.status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn cpr_match_three_attempts_per_login() {
    let broker = Broker::start().await;
    let tokens = broker.tokens("adult").await;
    let token = tokens["access_token"].as_str().unwrap();

    let (status, body) = broker.cpr_match(token, "140390-2086").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"match": true, "attempts_left": 2}));
    let (status, body) = broker.cpr_match(token, "0211851139").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"match": false, "attempts_left": 1}));
    // A malformed number is refused and not counted.
    let (status, body) = broker.cpr_match(token, "14-0390").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_request");
    assert!(!body.to_string().contains("14-0390"));
    let (status, body) = broker.cpr_match(token, "1403902086").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"match": true, "attempts_left": 0}));
    let (status, body) = broker.cpr_match(token, "1403902086").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["error"], "attempts_exhausted");

    // A new login has attempts of its own; a bad token has none.
    let fresh = broker.tokens("adult").await;
    let (status, _) = broker
        .cpr_match(fresh["access_token"].as_str().unwrap(), "1403902086")
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = broker.cpr_match("not-a-token", "1403902086").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_token");
}

#[tokio::test]
async fn key_rotation() {
    let broker = Broker::start().await;
    let first = broker.kids().await;
    assert_eq!(first.len(), 1);

    let second = broker.rotate(false).await;
    let tokens = broker.tokens("adult").await;
    let id_token = tokens["id_token"].as_str().unwrap();
    assert_eq!(jwt_header(id_token)["kid"], second.as_str());
    let kids = broker.kids().await;
    assert!(kids.contains(&first[0]) && kids.contains(&second));
    verify(id_token, &broker.jwks().await, &broker.issuer()).unwrap();

    let third = broker.rotate(true).await;
    assert_eq!(broker.kids().await, vec![third.clone()]);
    let tokens = broker.tokens("adult").await;
    let id_token = tokens["id_token"].as_str().unwrap();
    assert_eq!(jwt_header(id_token)["kid"], third.as_str());
    verify(id_token, &broker.jwks().await, &broker.issuer()).unwrap();
}

#[tokio::test]
async fn tampered_tokens_fail_verification() {
    let broker = Broker::start().await;
    let jwks = broker.jwks().await;
    let iss = broker.issuer();

    broker.tamper(json!({"alg": "none"})).await;
    let token = broker.tokens("adult").await["id_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(jwt_header(&token)["alg"], "none");
    assert!(token.ends_with('.'), "no signature");
    assert!(verify(&token, &jwks, &iss).is_err());

    broker.tamper(json!({"alg": "HS256"})).await;
    let token = broker.tokens("adult").await["id_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(jwt_header(&token)["alg"], "HS256");
    // Signed with the client secret: the algorithm-confusion attack a verifier must refuse.
    let mut hs = Validation::new(Algorithm::HS256);
    hs.set_audience(&[CLIENT]);
    let secret = DecodingKey::from_secret(SECRET.as_bytes());
    assert!(jsonwebtoken::decode::<Value>(&token, &secret, &hs).is_ok());
    assert!(verify(&token, &jwks, &iss).is_err());

    // One-shot: the next token is good again.
    let token = broker.tokens("adult").await["id_token"]
        .as_str()
        .unwrap()
        .to_owned();
    verify(&token, &jwks, &iss).unwrap();

    for (tamper, claim, value) in [
        (json!({"nonce": "forged"}), "nonce", json!("forged")),
        (
            json!({"audience": "someone-else"}),
            "aud",
            json!("someone-else"),
        ),
        (
            json!({"issuer": "https://evil.example"}),
            "iss",
            json!("https://evil.example"),
        ),
    ] {
        broker.tamper(tamper).await;
        let token = broker.tokens("adult").await["id_token"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(jwt_claims(&token)[claim], value);
    }
    broker.tamper(json!({"expired": true})).await;
    let token = broker.tokens("adult").await["id_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let error = verify(&token, &jwks, &iss).unwrap_err();
    assert!(error.contains("Expired"), "{error}");

    // Signed by a key that has left the JWKS.
    let (status, _) = broker
        .sim_post("tamper", json!({"sign_with_retired": true}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "no retired key yet");
    broker.rotate(true).await;
    broker.tamper(json!({"sign_with_retired": true})).await;
    let token = broker.tokens("adult").await["id_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let header = jwt_header(&token);
    assert_eq!(header["alg"], "RS256");
    let kid = header["kid"].as_str().unwrap();
    assert!(!broker.kids().await.iter().any(|k| k == kid));
    assert_eq!(kid, jwks["keys"][0]["kid"], "the retired first key");
    // It is a real signature of that key, only no longer published.
    verify(&token, &jwks, &iss).unwrap();
    assert!(verify(&token, &broker.jwks().await, &iss).is_err());

    let (status, _) = broker.sim_post("tamper", json!({"alg": "RS512"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn test_identities() {
    let broker = Broker::start().await;
    let listed = broker.get_json(format!("{}/_sim/users", broker.base)).await;
    let listed = listed["users"].as_array().unwrap();
    assert_eq!(listed.len(), TEST_USERS.len());
    for (user, json) in TEST_USERS.iter().zip(listed) {
        assert_eq!(json["user"], user.id);
        assert_eq!(json["cpr"], user.cpr);
        assert_eq!(json["birthdate"], user.birthdate);
        assert_eq!(json["loa"], user.loa.uri());
        let cpr = Cpr::parse(user.cpr).unwrap();
        assert_eq!(
            cpr.birth_date().to_string(),
            user.birthdate,
            "{}: the CPR's date and century give the birth date",
            user.id
        );
    }

    // Under 18 on every day of 2026 and 2027: the 18th birthday is after 2027.
    let minor = TestUser::find("minor").unwrap();
    let year = Cpr::parse(minor.cpr).unwrap().birth_date().year();
    assert!(year + 18 > 2027);
    // Adults on 1 January 2026.
    for id in ["adult", "adult-high", "adult-low", "adult-2007"] {
        let cpr = Cpr::parse(TestUser::find(id).unwrap().cpr).unwrap();
        let first_of_2026 = time::Date::from_calendar_date(2026, time::Month::January, 1).unwrap();
        assert!(cpr.is_at_least(18, first_of_2026), "{id}");
    }

    // Issued since 2007 without the modulus-11 check: weights 4,3,2,7,6,5,4,3,2,1.
    let cpr_2007 = TestUser::find("adult-2007").unwrap().cpr.replace('-', "");
    let weights = [4, 3, 2, 7, 6, 5, 4, 3, 2, 1];
    let sum: u32 = cpr_2007
        .chars()
        .zip(weights)
        .map(|(c, w)| c.to_digit(10).unwrap() * w)
        .sum();
    assert_ne!(sum % 11, 0, "adult-2007 fails mod-11");
    assert!(!Cpr::parse(&cpr_2007).unwrap().passes_historic_checksum());
    for id in ["adult", "adult-high", "adult-low", "minor"] {
        let cpr = Cpr::parse(TestUser::find(id).unwrap().cpr).unwrap();
        assert!(cpr.passes_historic_checksum(), "{id}");
    }

    // The ID token of the minor says so through the birth date only.
    let tokens = broker.tokens("minor").await;
    let claims = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(claims["birthdate"], "2010-06-15");
    assert!(!claims.to_string().contains("4129"));
}
