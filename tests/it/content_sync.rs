//! Contentful sync end to end: simulator → content connector → `offering_content` view →
//! storefront catalog, with a signed webhook triggering the delta that removes a deleted
//! entry, and an unsigned one refused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tcom_connectors::contentful::{ContentConfig, simulator};
use tcom_ingress::auth::CATALOG_MANAGER;
use tcom_ingress::content_webhook::sign;
use tcom_tests::{
    admin_token, eventually, operator_token, platform, settings, spawn_platform_ingress, stack,
    unique,
};

#[tokio::test]
async fn content_is_synced_by_locale_and_deletions_arrive_through_a_signed_webhook() {
    platform();
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(simulator::serve(
        "127.0.0.1:0".parse().unwrap(),
        std::future::pending(),
        move |address| {
            let _ = bound_tx.send(address);
        },
    ));
    let sim = format!("http://{}", bound_rx.await.unwrap());
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let space = unique("space");
    let space_url = format!("{sim}/_sim/spaces/{space}/environments/master");
    http.put(&space_url)
        .json(&json!({"token": "cda-token"}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    for (entry, offering, da, en) in [
        ("copy-fri", "fri", "Fri tale", "Unlimited talk"),
        ("copy-gone", "gone", "Snart væk", "Soon gone"),
    ] {
        http.put(format!("{space_url}/entries/{entry}"))
            .json(&json!({"content_type": "offering", "fields": {
                "offeringId": {"da-DK": offering},
                "headline": {"da-DK": da, "en-GB": en}
            }}))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
    }

    // The connector for this test's simulator.
    let stack = stack();
    let pool = sqlx::PgPool::connect(&platform().database_url)
        .await
        .unwrap();
    let codec = std::sync::Arc::new(tcom_schemas::Codec::new(&stack.registry_url).unwrap());
    let token_ref = format!("env://{}", unique("TOKEN"));
    // The connector talks to the simulator through a proxy that records its requests.
    let (proxy, requests) = recording_proxy(sim.clone()).await;
    let content_config = ContentConfig {
        delivery_url: proxy,
        tokens: HashMap::from([(token_ref.clone(), "cda-token".to_owned())]),
        poll_interval: Duration::from_secs(3600),
    };
    let start_connector = || {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(tcom_connectors::contentful::run(
            stack.kafka_settings(),
            pool.clone(),
            codec.clone(),
            content_config.clone(),
            async move {
                let _ = stop_rx.await;
            },
        ));
        (stop_tx, running)
    };
    let (stop_first, first) = start_connector();

    let app = spawn_platform_ingress().await;
    let id = unique("t").chars().take(20).collect::<String>();
    let host = format!("{id}.shop.test");
    let response = app
        .http
        .post(app.url("/v1/platform/tenants"))
        .bearer_auth(operator_token())
        .json(&json!({"tenant_id": id, "settings": {
            "name": "Content brand", "domains": [host], "default_locale": "da-DK",
            "locales": ["da-DK", "en-GB"], "currency": "DKK", "country": "DK",
            "segments": [{"name": "consumer", "max_binding_months": 6}], "channels": ["web"],
            "content": {"space_id": space, "environment": "master", "access_token_ref": token_ref}
        }}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let token = admin_token(Some(&id), &[CATALOG_MANAGER]);
    let offering = json!({
        "name": "Fri", "specification_id": "mobile",
        "prices": [{"name": "monthly", "price_type": "RECURRING", "amount_minor": 9900, "currency": "DKK"}],
        "sim_types": ["ESIM"], "placements": [{"channel": "web"}]
    });
    let put = eventually(Duration::from_secs(5), || async {
        let r = app
            .http
            .put(app.url("/v1/admin/offerings/fri"))
            .header("host", &host)
            .bearer_auth(&token)
            .json(&offering)
            .send()
            .await
            .ok()?;
        (r.status() == StatusCode::OK).then_some(())
    })
    .await;
    assert!(put.is_some());
    let activated = app
        .http
        .post(app.url("/v1/admin/offerings/fri/activate"))
        .header("host", &host)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(activated.status(), StatusCode::OK);

    let headline = |locale: &'static str| {
        let (app, host) = (&app, &host);
        async move {
            let body: Value = app
                .http
                .get(app.url(&format!("/v1/storefront/catalog?locale={locale}")))
                .header("host", host)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            body["offerings"].get(0)?["content"]["headline"]
                .as_str()
                .map(str::to_owned)
        }
    };
    let danish = eventually(Duration::from_secs(10), || headline("da-DK")).await;
    assert_eq!(
        danish.as_deref(),
        Some("Fri tale"),
        "initial sync reached the catalog"
    );
    assert_eq!(headline("en-GB").await.as_deref(), Some("Unlimited talk"));

    let count_gone = || {
        let pool = pool.clone();
        let id = id.clone();
        async move {
            let mut tx = tcom_connectors::postgres::begin_for_tenant(&pool, &id)
                .await
                .unwrap();
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM offering_content WHERE entry_id = 'copy-gone'",
            )
            .fetch_one(&mut *tx)
            .await
            .unwrap();
            n
        }
    };
    assert_eq!(count_gone().await, 2, "both locales of the second entry");

    // An editor deletes an entry and changes another; Contentful calls the webhook.
    http.delete(format!("{space_url}/entries/copy-gone"))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    http.put(format!("{space_url}/entries/copy-fri"))
        .json(&json!({"content_type": "offering", "fields": {"offeringId": {"da-DK": "fri"}, "headline": {"da-DK": "Fri tale, nu med 5G"}}}))
        .send().await.unwrap().error_for_status().unwrap();
    let path = format!("/v1/webhooks/contentful/{id}");
    let body = br#"{"sys":{"type":"DeletedEntry","id":"copy-gone"}}"#;
    let unsigned = app
        .http
        .post(app.url(&path))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), StatusCode::UNAUTHORIZED);
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .to_string();
    let signed_names = "x-contentful-timestamp,x-contentful-signed-headers";
    let signature = sign(
        &settings().content.webhook_secret,
        "POST",
        &path,
        &[
            ("x-contentful-timestamp".into(), timestamp.clone()),
            ("x-contentful-signed-headers".into(), signed_names.into()),
        ],
        body,
    );
    let signed = app
        .http
        .post(app.url(&path))
        .header("x-contentful-topic", "ContentManagement.Entry.delete")
        .header("x-contentful-timestamp", &timestamp)
        .header("x-contentful-signed-headers", signed_names)
        .header("x-contentful-signature", signature)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), StatusCode::ACCEPTED);

    let updated = eventually(Duration::from_secs(10), || async {
        (headline("da-DK").await.as_deref() == Some("Fri tale, nu med 5G")).then_some(())
    })
    .await;
    assert!(
        updated.is_some(),
        "the webhook's delta sync updated the headline"
    );
    assert_eq!(
        count_gone().await,
        0,
        "the deleted entry is gone in every locale"
    );
    // The English headline went with the field's removal in the new revision. The storefront
    // caches each locale's catalog for a second, and the English one was read above.
    let fallback = eventually(Duration::from_secs(3), || async {
        (headline("en-GB").await.as_deref() == Some("Fri tale, nu med 5G")).then_some(())
    })
    .await;
    assert!(fallback.is_some(), "en-GB falls back to the default locale");
    // The sync token is stored durably: a restarted connector continues from it with a delta
    // sync instead of syncing the space from the start. Shown to fail by making
    // `sync::sync_tenant` ignore the stored token (always `?initial=true`): the first request
    // after the restart was `…/sync?initial=true`.
    let mut tx = tcom_connectors::postgres::begin_for_tenant(&pool, &id)
        .await
        .unwrap();
    let token: String = sqlx::query_scalar("SELECT sync_token FROM content_sync_state")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    drop(tx);
    assert!(token.starts_with("d."), "{token}");
    let _ = stop_first.send(());
    first.await.unwrap().unwrap();
    requests.lock().unwrap().clear();
    // An editor changes the copy while no connector runs.
    http.put(format!("{space_url}/entries/copy-fri"))
        .json(&json!({"content_type": "offering", "fields": {"offeringId": {"da-DK": "fri"}, "headline": {"da-DK": "Fri tale, nu med eSIM"}}}))
        .send().await.unwrap().error_for_status().unwrap();
    let (stop_second, second) = start_connector();
    let resumed = eventually(Duration::from_secs(10), || async {
        (headline("da-DK").await.as_deref() == Some("Fri tale, nu med eSIM")).then_some(())
    })
    .await;
    assert!(resumed.is_some(), "the restarted connector synced the edit");
    let ours: Vec<String> = requests
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.contains(&format!("/spaces/{space}/")))
        .cloned()
        .collect();
    assert_eq!(
        ours.first(),
        Some(&format!(
            "/spaces/{space}/environments/master/sync?sync_token={token}"
        )),
        "the restarted connector's first request continues from the stored token: {ours:?}"
    );
    assert!(
        !ours.iter().any(|r| r.contains("initial=true")),
        "no initial sync after the restart: {ours:?}"
    );
    assert_eq!(count_gone().await, 0, "the deleted entry stays deleted");
    let _ = stop_second.send(());
    second.await.unwrap().unwrap();
}

/// A proxy in front of `target` (the simulator) that records the path and query of every
/// request it forwards. Only GETs: the connector sends nothing else.
async fn recording_proxy(target: String) -> (String, Arc<Mutex<Vec<String>>>) {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let log = requests.clone();
    let app = axum::Router::new().fallback(
        move |uri: axum::http::Uri, headers: axum::http::HeaderMap| {
            let (target, http, log) = (target.clone(), http.clone(), log.clone());
            async move {
                let path = uri
                    .path_and_query()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_default();
                log.lock().unwrap().push(path.clone());
                let mut request = http.get(format!("{target}{path}"));
                if let Some(auth) = headers.get("authorization") {
                    request = request.header("authorization", auth.to_str().unwrap());
                }
                let response = request.send().await.unwrap();
                let status = axum::http::StatusCode::from_u16(response.status().as_u16()).unwrap();
                let body = response.bytes().await.unwrap();
                (status, [("content-type", "application/json")], body)
            }
        },
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}"), requests)
}
