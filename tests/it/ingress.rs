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

/// The routes `ingress/src/app.rs` registers, with their methods: every `.route("path",
/// get(..).post(..))` of the router, read from the source so a new route cannot be missed.
fn routes_in_the_router() -> Vec<(String, Vec<String>)> {
    const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];
    let source = include_str!("../../ingress/src/app.rs");
    let mut routes = Vec::new();
    let mut rest = source;
    while let Some(at) = rest.find(".route(") {
        rest = &rest[at + ".route(".len()..];
        let open = rest.find('"').expect("a route path");
        let close = open + 1 + rest[open + 1..].find('"').expect("the path's end");
        let path = rest[open + 1..close].to_owned();
        let mut methods = Vec::new();
        let mut depth = 1;
        let bytes = &rest.as_bytes()[close + 1..];
        let mut i = 0;
        while depth > 0 && i < bytes.len() {
            let c = bytes[i];
            if c.is_ascii_alphabetic() || c == b'_' {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                let word = std::str::from_utf8(&bytes[start..i]).unwrap();
                let preceded_by_path = start >= 2 && &bytes[start - 2..start] == b"::";
                if depth == 1
                    && !preceded_by_path
                    && bytes.get(i) == Some(&b'(')
                    && METHODS.contains(&word)
                {
                    methods.push(word.to_owned());
                }
                continue;
            }
            match c {
                b'(' => depth += 1,
                b')' => depth -= 1,
                _ => {}
            }
            i += 1;
        }
        routes.push((path, methods));
    }
    routes
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_and_its_problems() {
    let routes = routes_in_the_router();
    // The parser itself: it finds the router's routes and their methods.
    assert!(routes.len() >= 25, "{routes:?}");
    assert!(
        routes.contains(&(
            "/v1/storefront/baskets/{basket_id}/lines/{line_id}".to_owned(),
            vec!["patch".to_owned(), "delete".to_owned()]
        )),
        "{routes:?}"
    );
    assert!(
        routes.iter().all(|(_, methods)| !methods.is_empty()),
        "{routes:?}"
    );

    let app = spawn_ingress().await;
    let (status, _, doc) = get(&app, "localhost", "/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(doc["components"]["schemas"].get("Problem").is_some());
    let mut missing = Vec::new();
    for (path, methods) in &routes {
        // The document does not describe itself.
        if path == "/openapi.json" {
            continue;
        }
        for method in methods {
            if doc["paths"][path].get(method).is_none() {
                missing.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    // Every error it documents is a problem: application/problem+json with the Problem schema.
    let mut not_problems = Vec::new();
    for (path, operations) in doc["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let Some(responses) = operation["responses"].as_object() else {
                continue;
            };
            for (status, response) in responses {
                if !status.starts_with('4') && !status.starts_with('5') {
                    continue;
                }
                // Not a problem: a load balancer reads the readiness report itself.
                if path == "/readyz" && status == "503" {
                    continue;
                }
                let schema = &response["content"]["application/problem+json"]["schema"]["$ref"];
                if schema != "#/components/schemas/Problem" {
                    not_problems.push(format!(
                        "{} {path} {status}: {}",
                        method.to_uppercase(),
                        response["content"]
                    ));
                }
            }
        }
    }
    assert!(
        missing.is_empty() && not_problems.is_empty(),
        "served but not in /openapi.json: {missing:#?}\nerror answers documented without the Problem schema as application/problem+json: {not_problems:#?}"
    );
}

/// The `/readyz` answer of `app`.
async fn readiness(app: &TestApp) -> (StatusCode, Value) {
    let (status, _, body) = get(app, "localhost", "/readyz").await;
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_names_exactly_the_dependency_that_does_not_answer() {
    // The processors must run, so that only the broken dependency fails.
    tcom_tests::platform();
    let port = tcom_tests::closed_port();
    for broken in ["schema_registry", "postgres", "redis"] {
        let app = tcom_tests::spawn_platform_ingress_with(|s| match broken {
            "schema_registry" => s.schema_registry.url = format!("http://127.0.0.1:{port}"),
            "postgres" => {
                s.database.url = format!("postgres://tcom:tcom@127.0.0.1:{port}/tcom");
            }
            _ => s.redis.url = format!("redis://127.0.0.1:{port}"),
        })
        .await;
        // Replies travel over Redis: without it the reply subscription is down too. Tenant
        // records are Avro: without the registry a fresh ingress cannot read the directory
        // (it retries rather than skip them).
        let expected: Vec<&str> = match broken {
            "redis" => vec!["command_replies", "redis"],
            "schema_registry" => vec!["schema_registry", "tenant_directory"],
            other => vec![other],
        };
        let last = std::sync::Mutex::new(Value::Null);
        let settled = eventually(Duration::from_secs(30), || async {
            let (status, body) = readiness(&app).await;
            *last.lock().unwrap() = body.clone();
            let failing: Vec<&str> = body["checks"]
                .as_object()?
                .iter()
                .filter(|(_, v)| *v != "ok")
                .map(|(k, _)| k.as_str())
                .collect();
            (status == StatusCode::SERVICE_UNAVAILABLE
                && body["status"] == "not_ready"
                && failing == expected)
                .then_some(())
        })
        .await;
        assert!(
            settled.is_some(),
            "with {broken} down, expected 503 naming {expected:?}; last answer {}",
            last.lock().unwrap()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_shutdown_requests_in_flight_finish_within_the_grace_period() {
    let id = unique("drain");
    let domain = format!("{id}.example.test");
    publish_tenant(&id, Some(&tenant(&id, std::slice::from_ref(&domain), 1))).await;
    // (grace, whether the 2 s request finishes)
    for (grace_ms, finishes) in [(6000, true), (300, false)] {
        let mut settings = tcom_tests::settings();
        settings.database.url = tcom_tests::platform().database_url.clone();
        settings.http.shutdown_grace_ms = grace_ms;
        let app = tcom_ingress::Application::build(&settings).await.unwrap();
        let address = app.local_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let result = app
                .run_until(async {
                    let _ = stopped.await;
                })
                .await;
            (result, Instant::now())
        });
        let test_app = TestApp {
            address,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
        };
        assert!(
            tenant_seen(&test_app, &domain, Duration::from_secs(10))
                .await
                .is_some()
        );
        // A read of a basket version that never comes: the handler waits 2 s, then answers.
        let url = test_app.url(&format!(
            "/v1/storefront/baskets/{}?min_version=1",
            uuid::Uuid::now_v7()
        ));
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let host = domain.clone();
        let in_flight = tokio::spawn(async move {
            let started = Instant::now();
            let response = http.get(url).header("host", host).send().await;
            (started.elapsed(), response.map(|r| r.status()))
        });
        tokio::time::sleep(Duration::from_millis(400)).await;
        let asked = Instant::now();
        stop.send(()).unwrap();
        // Once asked to stop, the ingress takes no new connections.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let fresh = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(1))
            .build()
            .unwrap()
            .get(test_app.url("/healthz"))
            .send()
            .await;
        assert!(
            fresh.is_err(),
            "a new request was served after shutdown: {fresh:?}"
        );
        let (took, answer) = in_flight.await.unwrap();
        let (result, finished) = tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("the ingress stops")
            .unwrap();
        assert!(result.is_ok(), "{result:?}");
        let stopped_after = finished.duration_since(asked);
        if finishes {
            assert_eq!(
                answer.as_ref().ok(),
                Some(&StatusCode::NOT_FOUND),
                "the request in flight was cut off: {answer:?}"
            );
            assert!(took >= Duration::from_millis(1900), "{took:?}");
            assert!(
                stopped_after < Duration::from_millis(grace_ms),
                "the ingress waited out its grace ({stopped_after:?}) with nothing in flight"
            );
        } else {
            // `run_until` returns at the end of the grace without waiting for the request (the
            // process then exits; in this test process its connection task lives on, so the
            // answer itself is not checked).
            let _ = answer;
            assert!(
                stopped_after >= Duration::from_millis(grace_ms)
                    && stopped_after < Duration::from_millis(1500),
                "stopped {stopped_after:?} after the request to stop"
            );
        }
    }
}
