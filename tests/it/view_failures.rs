//! A view record the database refuses for good is dead-lettered and the view connector goes on
//! with every other tenant's records; a database that cannot be reached is waited for (never
//! dead-lettered), and stopping a connector that waits returns at once.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tcom_connectors::dead_letter::{ConnectorMetrics, Options, RetryPolicy};
use tcom_connectors::postgres::begin_for_tenant;
use tcom_schemas::catalog::{
    ChannelPlacement, LifecycleStatus, OfferingDefinition, OfferingKind, OfferingPrice, PriceType,
    ProductOffering, SimType,
};
use tcom_schemas::{Codec, topics};
use tcom_tests::{eventually, fresh_database, stack, start_at_end, unique};

fn offering(tenant_id: &str, offering_id: &str, name: &str) -> ProductOffering {
    ProductOffering {
        tenant_id: tenant_id.to_owned(),
        offering_id: offering_id.to_owned(),
        lifecycle_status: LifecycleStatus::Active,
        definition: OfferingDefinition {
            name: name.to_owned(),
            description: None,
            specification_id: "mobile-5g".into(),
            prices: vec![OfferingPrice {
                name: "monthly".into(),
                price_type: PriceType::Recurring,
                amount_minor: 19_900,
                currency: "DKK".into(),
                recurring_period_months: Some(1),
            }],
            binding_months: vec![0],
            sim_types: vec![SimType::Esim],
            add_ons: vec![],
            kind: OfferingKind::Plan,
            eligible_segments: vec![],
            placements: vec![ChannelPlacement {
                channel: "web".into(),
                visible: true,
                display_name: None,
                description: None,
                sort_order: 1,
                monthly_price_minor: None,
            }],
        },
        version: 1,
        updated_at: 1_795_305_600_000,
    }
}

/// Publishes an offering straight to its topic, as the catalog processor would; returns its
/// partition and offset.
async fn publish(offering: &ProductOffering) -> (i32, i64) {
    let stack = stack();
    let producer: FutureProducer = stack
        .kafka_settings()
        .idempotent_producer()
        .create()
        .unwrap();
    let payload = Codec::new(&stack.registry_url)
        .unwrap()
        .encode(offering)
        .await
        .unwrap();
    let key = format!("{}:{}", offering.tenant_id, offering.offering_id);
    let delivery = producer
        .send(
            FutureRecord::to(topics::CATALOG_OFFERINGS)
                .key(&key)
                .payload(&payload),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    (delivery.partition, delivery.offset)
}

fn header(message: &impl Message, name: &str) -> Option<String> {
    let headers = message.headers()?;
    headers
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

#[tokio::test]
async fn an_offering_postgres_refuses_is_dead_lettered_and_other_tenants_reach_the_view() {
    let stack = stack();
    let (pool, _) = fresh_database().await;
    let codec = Arc::new(Codec::new(&stack.registry_url).unwrap());
    let group = unique("view-dlq-test");
    start_at_end(
        &stack.kafka_settings(),
        &group,
        &[topics::CATALOG_OFFERINGS],
    );
    let metrics = Arc::new(ConnectorMetrics::default());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let connector = tokio::spawn(tcom_connectors::views::run_with(
        stack.kafka_settings(),
        group.clone(),
        &[topics::CATALOG_OFFERINGS],
        pool.clone(),
        codec,
        Options {
            retry: RetryPolicy::default(),
            metrics: metrics.clone(),
        },
        async move {
            let _ = stop_rx.await;
        },
    ));

    let (a, b) = (unique("brand-a"), unique("brand-b"));
    let (a_partition, a_offset) = publish(&offering(&a, "plan-x", "Plan\u{0}X")).await;
    publish(&offering(&b, "fri-5g", "Fri 5G")).await;

    let started = Instant::now();
    let name = eventually(Duration::from_secs(10), || async {
        let mut tx = begin_for_tenant(&pool, &b).await.unwrap();
        sqlx::query_scalar::<_, String>(
            "SELECT name FROM offerings WHERE tenant_id = $1 AND offering_id = 'fri-5g'",
        )
        .bind(&b)
        .fetch_optional(&mut *tx)
        .await
        .unwrap()
    })
    .await;
    assert_eq!(
        name.as_deref(),
        Some("Fri 5G"),
        "tenant B's offering did not reach the view behind tenant A's unwritable one"
    );
    eprintln!("B visible after {:?}", started.elapsed());

    // A's record is on catalog.offerings.dlq, with the error and its origin.
    let reader: StreamConsumer = stack
        .kafka_settings()
        .client_config()
        .set("group.id", unique("dlq-reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    reader.subscribe(&["catalog.offerings.dlq"]).unwrap();
    let a_key = format!("{a}:plan-x");
    let dead = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let message = reader.recv().await.unwrap();
            if message.key() == Some(a_key.as_bytes())
                && header(&message, "dlq.application").as_deref() == Some(group.as_str())
            {
                break message.detach();
            }
        }
    })
    .await
    .expect("A's offering is dead-lettered within 20 s");
    let error = header(&dead, "dlq.error").unwrap();
    assert!(
        error.contains("22021") || error.contains("0x00"),
        "dlq.error says why: {error}"
    );
    assert_eq!(
        header(&dead, "dlq.topic").as_deref(),
        Some("catalog.offerings")
    );
    assert_eq!(
        header(&dead, "dlq.partition"),
        Some(a_partition.to_string())
    );
    assert_eq!(header(&dead, "dlq.offset"), Some(a_offset.to_string()));
    assert!(
        dead.payload().is_some_and(|p| !p.is_empty()),
        "the record as it was"
    );
    assert!(metrics.dead_letters.load(Ordering::Relaxed) >= 1);

    // A's row never made it; nothing else is wrong.
    let mut tx = begin_for_tenant(&pool, &a).await.unwrap();
    let a_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM offerings WHERE tenant_id = $1")
        .bind(&a)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(a_rows, 0);

    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(5), connector)
        .await
        .expect("the connector stops")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn an_unreachable_database_is_waited_for_and_a_stop_interrupts_the_wait() {
    let stack = stack();
    let codec = Arc::new(Codec::new(&stack.registry_url).unwrap());
    // Nothing listens on port 1: every write fails as "connection refused".
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(100))
        .connect_lazy("postgres://tcom@127.0.0.1:1/nothing")
        .unwrap();
    let group = unique("view-outage-test");
    start_at_end(
        &stack.kafka_settings(),
        &group,
        &[topics::CATALOG_OFFERINGS],
    );
    let metrics = Arc::new(ConnectorMetrics::default());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let connector = tokio::spawn(tcom_connectors::views::run_with(
        stack.kafka_settings(),
        group,
        &[topics::CATALOG_OFFERINGS],
        pool,
        codec,
        Options {
            retry: RetryPolicy {
                initial_backoff: Duration::from_millis(20),
                max_backoff: Duration::from_secs(5),
                max_attempts: 2,
            },
            metrics: metrics.clone(),
        },
        async move {
            let _ = stop_rx.await;
        },
    ));
    let tenant = unique("brand-outage");
    publish(&offering(&tenant, "fri-5g", "Fri 5G")).await;

    // Well past max_attempts, and now in a wait of over a second.
    let retrying = eventually(Duration::from_secs(30), || {
        let retries = metrics.retries.load(Ordering::Relaxed);
        async move { (retries >= 7).then_some(()) }
    })
    .await;
    assert!(retrying.is_some(), "the connector retries the write");
    assert_eq!(
        metrics.dead_letters.load(Ordering::Relaxed),
        0,
        "an outage dead-letters nothing"
    );
    assert_eq!(
        metrics.stalled.load(Ordering::Relaxed),
        1,
        "it shows it waits"
    );

    let stopping = Instant::now();
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(1), connector)
        .await
        .expect("a stop ends the wait within a second")
        .unwrap()
        .unwrap();
    eprintln!("stopped after {:?}", stopping.elapsed());
}
