//! Staff sign-in end to end: brand staff at their brand's broker with roles from the brand's
//! role table, platform operators at the platform's identity provider with roles from the
//! token, and the shared-secret admin tokens refused outside local runs.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tcom_ingress::auth::AdminAuth;
use tcom_tests::{operator_token, platform, spawn_platform_ingress_with};

use crate::checkout_shop::{Reply, Shop};
use crate::identity::{Broker, IdentityShop, new_realm, param, token_of};

/// A staff sign-in at `path` (`/v1/admin/sign-in` or `/v1/platform/sign-in`) through
/// `broker` as its test identity `user`, on `host` of `shop`'s ingress.
async fn staff_sign_in(
    shop: &Shop,
    broker: &Broker,
    path: &str,
    redirect_uri: &str,
    user: &str,
) -> Reply {
    let started = shop
        .call(
            Method::POST,
            path,
            None,
            Some(json!({ "redirect_uri": redirect_uri })),
        )
        .await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.body);
    let query = broker
        .login(started.body["authorization_url"].as_str().unwrap(), user)
        .await;
    shop.call(
        Method::POST,
        &format!("{path}/callback"),
        None,
        Some(json!({"state": param(&query, "state"), "code": param(&query, "code")})),
    )
    .await
}

fn staff_id_in(problem: &Value) -> String {
    let detail = problem["detail"].as_str().unwrap();
    let id = detail
        .split_whitespace()
        .nth(2)
        .expect("the detail names the staff id");
    assert_eq!(id.len(), 32, "{detail}");
    id.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brand_staff_sign_in_at_their_brand_and_get_only_the_roles_the_brand_granted() {
    let s = IdentityShop::open(None).await;
    let shop = &s.shop;
    let first = staff_sign_in(
        &s.shop,
        &s.broker,
        "/v1/admin/sign-in",
        &s.redirect_uri,
        "adult-high",
    )
    .await;
    assert_eq!(first.status, StatusCode::FORBIDDEN, "{}", first.body);
    assert_eq!(first.body["code"], "no_staff_roles");
    let staff_id = staff_id_in(&first.body);

    // A platform operator grants a role; an unknown role is refused.
    let path = format!("/v1/admin/staff/{staff_id}");
    let bad = shop
        .admin(
            Method::PUT,
            &path,
            &operator_token(),
            Some(json!({"roles": ["root"]})),
        )
        .await;
    assert_eq!(bad.body["code"], "invalid_role", "{}", bad.body);
    let granted = shop
        .admin(
            Method::PUT,
            &path,
            &operator_token(),
            Some(json!({"roles": ["catalog_viewer"]})),
        )
        .await;
    assert_eq!(granted.status, StatusCode::NO_CONTENT, "{}", granted.body);

    let signed_in = staff_sign_in(
        &s.shop,
        &s.broker,
        "/v1/admin/sign-in",
        &s.redirect_uri,
        "adult-high",
    )
    .await;
    assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.body);
    assert_eq!(signed_in.body["roles"], json!(["catalog_viewer"]));
    let token = token_of(&signed_in.body);
    assert_eq!(
        jsonwebtoken::decode_header(&token).unwrap().alg,
        jsonwebtoken::Algorithm::ES256
    );
    let orders = shop
        .admin(Method::GET, "/v1/admin/orders", &token, None)
        .await;
    assert_eq!(orders.status, StatusCode::OK, "{}", orders.body);
    // A viewer may not change the catalog, nor manage staff.
    let retire = shop
        .admin(
            Method::POST,
            "/v1/admin/offerings/plan/retire",
            &token,
            Some(json!({})),
        )
        .await;
    assert_eq!(retire.status, StatusCode::FORBIDDEN, "{}", retire.body);
    let staff = shop
        .admin(Method::GET, "/v1/admin/staff", &token, None)
        .await;
    assert_eq!(staff.status, StatusCode::FORBIDDEN, "{}", staff.body);
    let listed = shop
        .admin(Method::GET, "/v1/admin/staff", &shop.brand_admin(), None)
        .await;
    assert_eq!(listed.body["items"][0]["staff_id"], staff_id.as_str());

    // The token is this brand's only.
    let other = IdentityShop::open(None).await;
    let elsewhere = other
        .shop
        .admin(Method::GET, "/v1/admin/orders", &token, None)
        .await;
    assert_eq!(
        elsewhere.status,
        StatusCode::FORBIDDEN,
        "{}",
        elsewhere.body
    );
    assert_eq!(elsewhere.body["code"], "tenant_mismatch");

    // Signing out ends it; revoking the roles stops the next sign-in.
    let out = shop
        .admin(Method::POST, "/v1/admin/sign-out", &token, None)
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.body);
    let after = shop
        .admin(Method::GET, "/v1/admin/orders", &token, None)
        .await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED, "{}", after.body);
    let revoked = shop
        .admin(
            Method::PUT,
            &path,
            &shop.brand_admin(),
            Some(json!({"roles": []})),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.body);
    let again = staff_sign_in(
        &s.shop,
        &s.broker,
        "/v1/admin/sign-in",
        &s.redirect_uri,
        "adult-high",
    )
    .await;
    assert_eq!(again.body["code"], "no_staff_roles", "{}", again.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_operators_sign_in_at_the_platforms_provider_and_need_the_operator_role() {
    let s = IdentityShop::open(None).await;
    let realm = new_realm();
    let secret = format!("ops-{}", uuid::Uuid::new_v4().simple());
    let redirect_uri = "http://localhost:8080/auth/callback".to_owned();
    let broker = Broker::new(realm.clone(), &redirect_uri, &secret).await;
    let secret_ref = platform().put_secret(&format!("oidc/{realm}"), &secret);
    let operators = spawn_platform_ingress_with(|settings| {
        settings.identity.operator_issuer = broker.issuer.clone();
        settings.identity.operator_client_id = "shop-client".to_owned();
        settings.identity.operator_client_secret_ref = secret_ref;
        settings.identity.operator_redirect_uris = vec![redirect_uri.clone()];
    })
    .await;
    let via = s.shop.through(operators);

    let refused = staff_sign_in(
        &via,
        &broker,
        "/v1/platform/sign-in",
        &redirect_uri,
        "adult",
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert_eq!(refused.body["code"], "not_an_operator");
    let elsewhere = via
        .call(
            Method::POST,
            "/v1/platform/sign-in",
            None,
            Some(json!({"redirect_uri": "https://evil.example/cb"})),
        )
        .await;
    assert_eq!(elsewhere.body["code"], "invalid_redirect_uri");

    let operator = staff_sign_in(
        &via,
        &broker,
        "/v1/platform/sign-in",
        &redirect_uri,
        "operator",
    )
    .await;
    assert_eq!(operator.status, StatusCode::OK, "{}", operator.body);
    assert_eq!(operator.body["roles"], json!(["platform_operator"]));
    let token = token_of(&operator.body);
    // (A new ingress instance reads the tenants topic first.)
    let tenant = tcom_tests::eventually(std::time::Duration::from_secs(10), || async {
        let r = via
            .admin(
                Method::GET,
                &format!("/v1/platform/tenants/{}", via.tenant),
                &token,
                None,
            )
            .await;
        (r.status == StatusCode::OK).then_some(r)
    })
    .await;
    assert!(tenant.is_some(), "the operator reads the tenant");
    // An operator's token names no tenant: it is not a brand's staff token.
    let orders = via
        .admin(Method::GET, "/v1/admin/orders", &token, None)
        .await;
    assert_eq!(orders.status, StatusCode::FORBIDDEN, "{}", orders.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_secret_admin_tokens_are_refused_outside_local_runs() {
    let mut secrets = tcom_tests::settings();
    secrets.auth.admin_jwt_secret = "production-admin-secret".to_owned();
    let production = spawn_platform_ingress_with(|settings| {
        settings.mode = tcom_ingress::settings::Mode::Production;
        settings.auth.admin_jwt_secret = "production-admin-secret".to_owned();
        settings.auth.guest_token_secret = "production-guest-secret".to_owned();
        settings.content.webhook_secret = "production-webhook-secret".to_owned();
        settings.identity.master_key = "production-master-key".to_owned();
        settings.smdp.token = "production-smdp-token".to_owned();
        settings.logistics.token = "production-logistics-token".to_owned();
        settings.logistics.webhook_secret = "production-logistics-webhook".to_owned();
        settings.carrier.token = "production-carrier-token".to_owned();
        settings.carrier.webhook_secret = "production-carrier-webhook".to_owned();
    })
    .await;
    // Signed with the very secret this ingress holds, and still refused.
    let token = AdminAuth::new(&secrets.auth).issue(
        "someone",
        None,
        &[tcom_ingress::auth::PLATFORM_OPERATOR],
        600,
    );
    let r = production
        .http
        .get(production.url("/v1/platform/tenants/nordlys"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("local runs only"),
        "{body}"
    );
}
