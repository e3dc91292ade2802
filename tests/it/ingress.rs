//! The ingress from the outside: tenant resolution by Host, readiness, problem answers and
//! the OpenAPI document, through a real socket with the tenants topic on the real broker.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use tcom_schemas::tenant::TenantStatus;
use tcom_tests::{TestApp, eventually, publish_tenant, spawn_ingress, tenant, unique};

async fn get(app: &TestApp, host: &str, path: &str) -> (StatusCode, Option<String>, Value) {
    let response = app
        .http
        .get(app.url(path))
        .header("host", host)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.json().await.unwrap_or(Value::Null);
    (status, content_type, body)
}

async fn tenant_seen(app: &TestApp, host: &str, timeout: Duration) -> Option<Value> {
    eventually(timeout, || async {
        let (status, _, body) = get(app, host, "/v1/storefront/tenant").await;
        (status == StatusCode::OK).then_some(body)
    })
    .await
}

#[tokio::test]
async fn a_new_tenant_is_served_within_a_second_of_onboarding() {
    // Ready needs the processors running (the platform's), not only the dependencies.
    let app = tcom_tests::spawn_platform_ingress().await;
    // Wait until this instance has read the topic so far.
    let ready = eventually(Duration::from_secs(30), || async {
        let (status, _, _) = get(&app, "localhost", "/readyz").await;
        (status == StatusCode::OK).then_some(())
    })
    .await;
    assert!(ready.is_some(), "ingress never became ready");

    let id = unique("brand");
    let domain = format!("{id}.example.test");
    publish_tenant(&id, Some(&tenant(&id, std::slice::from_ref(&domain), 1))).await;
    let published = Instant::now();
    let seen = tenant_seen(&app, &domain, Duration::from_secs(1)).await;
    let body = seen.unwrap_or_else(|| {
        panic!(
            "{domain} not served {:?} after onboarding",
            published.elapsed()
        )
    });
    assert_eq!(body["tenant_id"], Value::String(id.clone()));
    assert_eq!(body["currency"], "DKK");

    // readyz names the tenant of the Host it was asked on.
    let (status, _, body) = get(&app, &format!("{domain}:8080"), "/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["processors"], "ok", "{body}");
    assert_eq!(body["tenant"], Value::String(id));
}

#[tokio::test]
async fn each_host_gets_its_own_tenant_and_unknown_hosts_get_a_problem() {
    let app = spawn_ingress().await;
    let (a, b) = (unique("brand-a"), unique("brand-b"));
    let (host_a, host_b) = (
        format!("{a}.example.test"),
        format!("shop.{b}.example.test"),
    );
    publish_tenant(&a, Some(&tenant(&a, std::slice::from_ref(&host_a), 1))).await;
    publish_tenant(&b, Some(&tenant(&b, std::slice::from_ref(&host_b), 1))).await;

    let seen_a = tenant_seen(&app, &host_a.to_uppercase(), Duration::from_secs(10))
        .await
        .unwrap();
    let seen_b = tenant_seen(&app, &host_b, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(seen_a["tenant_id"], Value::String(a.clone()));
    assert_eq!(seen_b["tenant_id"], Value::String(b.clone()));

    // A look-alike of tenant B's domain is not tenant B.
    for host in [
        format!("{b}.example.test"),
        format!("{host_b}.evil.test"),
        "localhost".to_owned(),
    ] {
        let (status, content_type, body) = get(&app, &host, "/v1/storefront/tenant").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{host}: {body}");
        assert_eq!(content_type.as_deref(), Some("application/problem+json"));
        assert_eq!(body["code"], "unknown_tenant");
        assert_eq!(body["status"], 404);
    }
}

#[tokio::test]
async fn suspending_or_removing_a_tenant_stops_its_storefront() {
    let app = spawn_ingress().await;
    let id = unique("brand");
    let (old_domain, new_domain) = (
        format!("{id}.example.test"),
        format!("www.{id}.example.test"),
    );
    publish_tenant(
        &id,
        Some(&tenant(&id, std::slice::from_ref(&old_domain), 1)),
    )
    .await;
    assert!(
        tenant_seen(&app, &old_domain, Duration::from_secs(10))
            .await
            .is_some()
    );

    // Version 2 moves the brand to a new domain: the old one stops answering.
    publish_tenant(
        &id,
        Some(&tenant(&id, std::slice::from_ref(&new_domain), 2)),
    )
    .await;
    assert!(
        tenant_seen(&app, &new_domain, Duration::from_secs(10))
            .await
            .is_some()
    );
    let (status, _, _) = get(&app, &old_domain, "/v1/storefront/tenant").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let mut suspended = tenant(&id, std::slice::from_ref(&new_domain), 3);
    suspended.status = TenantStatus::Suspended;
    publish_tenant(&id, Some(&suspended)).await;
    let refused = eventually(Duration::from_secs(10), || async {
        let (status, _, body) = get(&app, &new_domain, "/v1/storefront/tenant").await;
        (status == StatusCode::FORBIDDEN).then_some(body)
    })
    .await
    .expect("suspension takes effect");
    assert_eq!(refused["code"], "tenant_suspended");

    publish_tenant(&id, None).await;
    let gone = eventually(Duration::from_secs(10), || async {
        let (status, _, _) = get(&app, &new_domain, "/v1/storefront/tenant").await;
        (status == StatusCode::NOT_FOUND).then_some(())
    })
    .await;
    assert!(gone.is_some(), "a tombstone removes the tenant");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_with_problems() {
    let app = spawn_ingress().await;
    let (status, content_type, body) = get(&app, "localhost", "/no/such/thing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    assert_eq!(body["code"], "not_found");

    let response = app.http.delete(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "method_not_allowed");
}

#[tokio::test]
async fn the_openapi_document_describes_the_routes() {
    let app = spawn_ingress().await;
    let (status, _, doc) = get(&app, "localhost", "/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in ["/healthz", "/readyz", "/v1/storefront/tenant"] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["schemas"].get("Problem").is_some());
}
