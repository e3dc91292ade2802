//! Unsafe settings and dependencies that misbehave are refused or survived loudly, never
//! silently: the development secrets outside local mode, a database role that bypasses
//! Row-Level Security, a Redis that accepts connections and never answers.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tcom_ingress::Application;
use tcom_ingress::settings::Mode;
use tcom_tests::{eventually, platform, publish_tenant, settings, tenant, unique};

async fn refusal(settings: &tcom_ingress::Settings) -> String {
    match Application::build(settings).await {
        Ok(_) => panic!("the ingress started with unsafe settings"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn the_development_secrets_are_refused_outside_local_mode() {
    let mut settings = settings();
    settings.mode = Mode::Production;
    let error = refusal(&settings).await;
    for secret in [
        "auth.admin_jwt_secret",
        "identity.master_key",
        "auth.guest_token_secret",
        "content.webhook_secret",
    ] {
        assert!(error.contains(secret), "{error}");
    }
    assert!(error.contains("TCOM__MODE=local"), "{error}");
}

#[tokio::test]
async fn a_database_role_that_bypasses_row_level_security_is_refused() {
    let superuser = std::env::var("TCOM_TEST_SUPERUSER_DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "TCOM_TEST_SUPERUSER_DATABASE_URL is not set: scripts/stack writes it for the local \
             PostgreSQL; with your own database, point it at a superuser connection"
        )
    });
    let mut settings = settings();
    settings.database.url = superuser;
    let error = refusal(&settings).await;
    assert!(error.contains("superuser"), "{error}");
    assert!(error.contains("Row-Level Security"), "{error}");
}

/// A TCP server that accepts connections, reads what comes and never answers.
async fn silent_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut buffer = [0u8; 1024];
                while matches!(socket.read(&mut buffer).await, Ok(n) if n > 0) {}
            });
        }
    });
    format!("redis://{address}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_never_answers_does_not_hold_storefront_requests() {
    let mut settings = settings();
    settings.database.url = platform().database_url.clone();
    settings.redis.url = silent_server().await;
    let app = Application::build(&settings).await.expect("ingress builds");
    let address = app.local_addr();
    tokio::spawn(app.run_until(std::future::pending()));
    let http = reqwest::Client::builder().no_proxy().build().unwrap();

    let id = unique("silent");
    let domain = format!("{id}.example.test");
    publish_tenant(&id, Some(&tenant(&id, std::slice::from_ref(&domain), 1))).await;
    let url = |path: &str| format!("http://{address}{path}");
    let served = eventually(Duration::from_secs(10), || async {
        let r = http
            .get(url("/v1/storefront/tenant"))
            .header("host", &domain)
            .send()
            .await
            .ok()?;
        (r.status() == StatusCode::OK).then_some(())
    })
    .await;
    assert!(served.is_some(), "{domain} never served");

    // Rate-limited: the limiter asks Redis, which never answers. The request must pass
    // within the Redis timeout (500 ms), not hang until the request timeout.
    let started = Instant::now();
    let response = http
        .get(url("/v1/storefront/numbers?random=1"))
        .header("host", &domain)
        .send()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");

    // Readiness says Redis is the problem.
    let ready = http
        .get(url("/readyz"))
        .header("host", "localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_ne!(body["checks"]["redis"], "ok", "{body}");
}

#[test]
fn publishing_replies_to_a_redis_that_never_answers_returns_in_bounded_time() {
    use tcom_state::{Reply, ReplyBody, ReplySink};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let url = runtime.block_on(silent_server());
    let sink =
        tcom_connectors::replies::RedisReplySink::with_timeout(&url, Duration::from_millis(300))
            .unwrap();
    let started = Instant::now();
    // On the runtime's thread this would stall every partition of the processor.
    sink.publish(vec![Reply {
        reply_to: "nobody".to_owned(),
        command_id: "c1".to_owned(),
        body: ReplyBody::Processed(b"{}".to_vec()),
    }]);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn topics_are_created_with_the_configured_replication() {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    use rdkafka::client::DefaultClientContext;
    use tcom_state::admin::{TopicSpec, ensure_topics};

    let stack = tcom_tests::stack();
    // One broker: a replication factor of 2 cannot be met, and creation must say so rather
    // than quietly creating a topic with one replica.
    let mut kafka = stack.kafka_settings();
    kafka.replication_factor = 2;
    kafka.min_insync_replicas = 2;
    let refused = ensure_topics(&kafka, &[TopicSpec::new(unique("rf2"), 1)]).await;
    assert!(refused.is_err(), "a topic with 2 replicas on one broker");

    // The minimum in-sync replicas are set on the topic itself, not left to the broker.
    let topic = unique("rf1");
    let mut kafka = stack.kafka_settings();
    kafka.min_insync_replicas = 1;
    ensure_topics(&kafka, &[TopicSpec::new(topic.clone(), 1)])
        .await
        .unwrap();
    let admin: AdminClient<DefaultClientContext> = kafka.client_config().create().unwrap();
    let configs = admin
        .describe_configs(&[ResourceSpecifier::Topic(&topic)], &AdminOptions::new())
        .await
        .unwrap();
    let resource = configs.into_iter().next().unwrap().unwrap();
    let min_isr = resource
        .entries
        .iter()
        .find(|e| e.name == "min.insync.replicas")
        .expect("min.insync.replicas is described");
    assert_eq!(min_isr.value.as_deref(), Some("1"));
    assert!(
        matches!(min_isr.source, rdkafka::admin::ConfigSource::DynamicTopic),
        "set on the topic, not the broker's default: {:?}",
        min_isr.source
    );
}
