//! Contentful sync end to end: simulator → content connector → `offering_content` view →
//! storefront catalog, with a signed webhook triggering the delta that removes a deleted
//! entry, and an unsigned one refused.

use std::collections::HashMap;
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
    tokio::spawn(tcom_connectors::contentful::run(
        stack.kafka_settings(),
        pool.clone(),
        codec,
        ContentConfig {
            delivery_url: sim.clone(),
            tokens: HashMap::from([(token_ref.clone(), "cda-token".to_owned())]),
            poll_interval: Duration::from_secs(3600),
        },
        std::future::pending(),
    ));

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
    // The sync token is stored durably.
    let mut tx = tcom_connectors::postgres::begin_for_tenant(&pool, &id)
        .await
        .unwrap();
    let token: String = sqlx::query_scalar("SELECT sync_token FROM content_sync_state")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert!(token.starts_with("d."), "{token}");
}
