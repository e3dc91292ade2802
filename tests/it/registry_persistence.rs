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

#[tokio::test]
async fn a_restarted_registry_remembers_everything() {
    let topic = unique("_schemas-test");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let schema = json!({"type": "record", "name": "P", "fields": [{"name": "x", "type": "long"}]})
        .to_string();

    let (url, first) = start(&topic).await;
    let registered: Value = http
        .post(format!("{url}/subjects/kept-value/versions"))
        .json(&json!({"schema": schema}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = registered["id"].as_i64().unwrap();
    http.put(format!("{url}/config/kept-value"))
        .json(&json!({"compatibility": "FULL_TRANSITIVE"}))
        .send()
        .await
        .unwrap();
    http.post(format!("{url}/subjects/gone-value/versions"))
        .json(&json!({"schema": schema}))
        .send()
        .await
        .unwrap();
    http.delete(format!("{url}/subjects/gone-value"))
        .send()
        .await
        .unwrap();
    first.abort();
    let _ = first.await;

    let (url, _second) = start(&topic).await;
    let latest: Value = http
        .get(format!("{url}/subjects/kept-value/versions/latest"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(latest["id"].as_i64(), Some(id));
    assert_eq!(latest["version"], json!(1));
    let config: Value = http
        .get(format!("{url}/config/kept-value"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config, json!({"compatibilityLevel": "FULL_TRANSITIVE"}));
    let subjects: Value = http
        .get(format!("{url}/subjects"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        subjects,
        json!(["kept-value"]),
        "the soft-deleted subject stays deleted"
    );
    // A new schema gets the next id, not a reused one.
    let other = json!({"type": "record", "name": "Q", "fields": []}).to_string();
    let next: Value = http
        .post(format!("{url}/subjects/other-value/versions"))
        .json(&json!({"schema": other}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(next["id"].as_i64(), Some(id + 1));
}
