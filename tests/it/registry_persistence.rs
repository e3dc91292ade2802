//! The stand-in keeps its state in a compacted Kafka topic: a new instance on the same topic
//! knows every subject, version, id and config the previous one stored.

use std::sync::Arc;

use serde_json::{Value, json};
use tcom_registry::{KafkaLog, Registry, router};
use tcom_tests::{stack, unique};

async fn start(topic: &str) -> (String, tokio::task::JoinHandle<()>) {
    let (log, state) = KafkaLog::open(&stack().kafka_settings(), topic)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = router(Arc::new(Registry::new(log, state)));
    let handle = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, handle)
}

/// Sends a request, requires a success status and returns the JSON body.
async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> Value {
    let mut request = http.request(method, &url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_restarted_registry_remembers_everything() {
    use reqwest::Method;
    let topic = unique("_schemas-test");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let schema = json!({"type": "record", "name": "P", "fields": [{"name": "x", "type": "long"}]})
        .to_string();

    let (url, first) = start(&topic).await;
    let registered = call(
        &http,
        Method::POST,
        format!("{url}/subjects/kept-value/versions"),
        Some(json!({"schema": schema})),
    )
    .await;
    let id = registered["id"].as_i64().unwrap();
    call(
        &http,
        Method::PUT,
        format!("{url}/config/kept-value"),
        Some(json!({"compatibility": "FULL_TRANSITIVE"})),
    )
    .await;
    call(
        &http,
        Method::POST,
        format!("{url}/subjects/gone-value/versions"),
        Some(json!({"schema": schema})),
    )
    .await;
    call(
        &http,
        Method::DELETE,
        format!("{url}/subjects/gone-value"),
        None,
    )
    .await;
    first.abort();
    let _ = first.await;

    let (url, _second) = start(&topic).await;
    let latest = call(
        &http,
        Method::GET,
        format!("{url}/subjects/kept-value/versions/latest"),
        None,
    )
    .await;
    assert_eq!(latest["id"].as_i64(), Some(id));
    assert_eq!(latest["version"], json!(1));
    let config = call(&http, Method::GET, format!("{url}/config/kept-value"), None).await;
    assert_eq!(config, json!({"compatibilityLevel": "FULL_TRANSITIVE"}));
    let subjects = call(&http, Method::GET, format!("{url}/subjects"), None).await;
    assert_eq!(
        subjects,
        json!(["kept-value"]),
        "the soft-deleted subject stays deleted"
    );
    // A new schema gets the next id, not a reused one.
    let other = json!({"type": "record", "name": "Q", "fields": []}).to_string();
    let next = call(
        &http,
        Method::POST,
        format!("{url}/subjects/other-value/versions"),
        Some(json!({"schema": other})),
    )
    .await;
    assert_eq!(next["id"].as_i64(), Some(id + 1));
}
