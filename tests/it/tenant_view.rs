//! The tenant view connector materializes the tenants topic into PostgreSQL under Row-Level
//! Security: each tenant's row is visible only inside that tenant's scope.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::{PgPool, Row};
use tcom_connectors::postgres::begin_for_tenant;
use tcom_schemas::tenant::Tenant;
use tcom_schemas::{Codec, Contract};
use tcom_tests::{eventually, fresh_database, publish_tenant, stack, tenant, unique};

async fn version_seen_as(pool: &PgPool, scope: Option<&str>, tenant_id: &str) -> Option<i64> {
    let mut tx = match scope {
        Some(scope) => begin_for_tenant(pool, scope).await.unwrap(),
        None => pool.begin().await.unwrap(),
    };
    sqlx::query("SELECT version FROM tenants WHERE tenant_id = $1")
        .bind(tenant_id)
        .fetch_optional(&mut *tx)
        .await
        .unwrap()
        .map(|row| row.get::<i64, _>("version"))
}

/// Publishes a tenant record, to `partition` if given, and returns where it was written.
async fn publish_to(tenant_id: &str, record: &Tenant, partition: Option<i32>) -> (i32, i64) {
    let stack = stack();
    let producer: FutureProducer = stack
        .kafka_settings()
        .idempotent_producer()
        .create()
        .unwrap();
    let payload = Codec::new(&stack.registry_url)
        .unwrap()
        .encode(record)
        .await
        .unwrap();
    let mut message = FutureRecord::to(Tenant::TOPIC)
        .key(tenant_id)
        .payload(&payload);
    if let Some(partition) = partition {
        message = message.partition(partition);
    }
    producer
        .send(message, Duration::from_secs(10))
        .await
        .map(|delivery| (delivery.partition, delivery.offset))
        .map_err(|(e, _)| e)
        .unwrap()
}

#[tokio::test]
async fn tenants_are_materialized_and_visible_only_in_their_own_scope() {
    let stack = stack();
    let (pool, _) = fresh_database().await;
    let codec = Arc::new(Codec::new(&stack.registry_url).unwrap());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let connector = tokio::spawn(tcom_connectors::views::run(
        stack.kafka_settings(),
        unique("tenant-view-test"),
        tcom_connectors::views::TOPICS,
        pool.clone(),
        codec,
        async move {
            let _ = stop_rx.await;
        },
    ));

    let (a, b) = (unique("brand-a"), unique("brand-b"));
    publish_tenant(&a, Some(&tenant(&a, &[format!("{a}.example.test")], 2))).await;
    publish_tenant(&b, Some(&tenant(&b, &[format!("{b}.example.test")], 1))).await;
    let seen = eventually(Duration::from_secs(20), || {
        version_seen_as(&pool, Some(&a), &a)
    })
    .await;
    assert_eq!(seen, Some(2));
    assert!(
        eventually(Duration::from_secs(20), || version_seen_as(
            &pool,
            Some(&b),
            &b
        ))
        .await
        .is_some()
    );

    // Outside A's scope, A's row does not exist: no setting, or B's setting.
    assert_eq!(version_seen_as(&pool, None, &a).await, None);
    assert_eq!(version_seen_as(&pool, Some(&b), &a).await, None);
    let everything: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(everything, 0, "an unscoped query sees no rows at all");

    // A replayed older version does not overwrite the newer row: v3 first, then v1. To know
    // that v1 was consumed (and not merely still in flight), a marker tenant is published to
    // v1's partition after it; the connector reads a partition in order, so once the marker's
    // row exists, v1 has been applied or refused. Shown to fail by removing the
    // `WHERE tenants.version <= EXCLUDED.version` guard in `tenant_view::upsert`: the row
    // read back is 1.
    publish_tenant(&a, Some(&tenant(&a, &[format!("{a}.example.test")], 3))).await;
    let newest = eventually(Duration::from_secs(20), || async {
        version_seen_as(&pool, Some(&a), &a)
            .await
            .filter(|v| *v == 3)
    })
    .await;
    assert_eq!(newest, Some(3));
    let (partition, _) = publish_to(&a, &tenant(&a, &[format!("{a}.example.test")], 1), None).await;
    let marker = unique("brand-marker");
    publish_to(
        &marker,
        &tenant(&marker, &[format!("{marker}.example.test")], 1),
        Some(partition),
    )
    .await;
    let marker_seen = eventually(Duration::from_secs(20), || {
        version_seen_as(&pool, Some(&marker), &marker)
    })
    .await;
    assert_eq!(
        marker_seen,
        Some(1),
        "the record after v1 on its partition arrived"
    );
    assert_eq!(
        version_seen_as(&pool, Some(&a), &a).await,
        Some(3),
        "the older v1, consumed after v3, overwrote the row"
    );

    // A tombstone deletes the row.
    publish_tenant(&b, None).await;
    let deleted = eventually(Duration::from_secs(20), || async {
        version_seen_as(&pool, Some(&b), &b)
            .await
            .is_none()
            .then_some(())
    })
    .await;
    assert!(deleted.is_some());

    let _ = stop_tx.send(());
    connector.await.unwrap().unwrap();
}
