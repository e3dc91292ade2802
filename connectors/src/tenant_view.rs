//! Materializes the compacted `tenants` topic into the `tenants` table.
//!
//! At-least-once consumption made idempotent by the version guard in the upsert: replaying a
//! record, or receiving an older one after a newer one, leaves the row as it is. Offsets are
//! committed only after the row is written.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use sqlx::PgPool;
use tcom_schemas::tenant::{Tenant, TenantStatus};
use tcom_schemas::{Codec, topics};
use tcom_state::client::KafkaSettings;

use crate::postgres::begin_for_tenant;

/// Consumer group of this connector.
pub const GROUP_ID: &str = "tcom-connector-tenant-view";

/// Errors of the connector.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

/// Writes one tenant record (or removes the tenant for a tombstone) under the tenant's RLS
/// scope. Older versions never overwrite newer ones.
///
/// # Errors
/// The database refused the write.
pub async fn upsert(
    pool: &PgPool,
    tenant_id: &str,
    tenant: Option<&Tenant>,
    partition: i32,
    offset: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = begin_for_tenant(pool, tenant_id).await?;
    match tenant {
        None => {
            sqlx::query("DELETE FROM tenants WHERE tenant_id = $1")
                .bind(tenant_id)
                .execute(&mut *tx)
                .await?;
        }
        Some(t) => {
            let s = &t.settings;
            let status = match t.status {
                TenantStatus::Active => "ACTIVE",
                TenantStatus::Suspended => "SUSPENDED",
            };
            let settings = serde_json::to_value(s).expect("settings serialise to JSON");
            sqlx::query(
                "INSERT INTO tenants (tenant_id, name, status, domains, default_locale, locales, currency, country, settings, version, updated_at, source_partition, source_offset)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, to_timestamp($11::double precision / 1000), $12, $13)
                 ON CONFLICT (tenant_id) DO UPDATE SET
                    name = EXCLUDED.name, status = EXCLUDED.status, domains = EXCLUDED.domains,
                    default_locale = EXCLUDED.default_locale, locales = EXCLUDED.locales,
                    currency = EXCLUDED.currency, country = EXCLUDED.country, settings = EXCLUDED.settings,
                    version = EXCLUDED.version, updated_at = EXCLUDED.updated_at,
                    source_partition = EXCLUDED.source_partition, source_offset = EXCLUDED.source_offset
                 WHERE tenants.version <= EXCLUDED.version",
            )
            .bind(tenant_id)
            .bind(&s.name)
            .bind(status)
            .bind(&s.domains)
            .bind(&s.default_locale)
            .bind(&s.locales)
            .bind(&s.currency)
            .bind(&s.country)
            .bind(settings)
            .bind(t.version)
            .bind(t.updated_at)
            .bind(partition)
            .bind(offset)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await
}

/// Runs the connector in consumer group `group_id` (normally [`GROUP_ID`]) until `shutdown`
/// resolves.
///
/// # Errors
/// The consumer cannot be created or subscribed.
pub async fn run(
    kafka: KafkaSettings,
    group_id: String,
    pool: PgPool,
    codec: Arc<Codec>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ViewError> {
    let consumer: StreamConsumer = kafka.read_committed_consumer(&group_id).create()?;
    consumer.subscribe(&[topics::TENANTS])?;
    tracing::info!(group = %group_id, "Tenant view connector started.");
    tokio::pin!(shutdown);
    loop {
        let message = tokio::select! {
            _ = &mut shutdown => break,
            message = consumer.recv() => message,
        };
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "Kafka receive failed; retrying.");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let key = message
            .key()
            .map(String::from_utf8_lossy)
            .unwrap_or_default()
            .into_owned();
        let tenant = match message.payload() {
            None => None,
            Some(bytes) => match codec.decode::<Tenant>(bytes).await {
                Ok(t) => Some(t),
                Err(e) if !e.is_retryable() => {
                    tracing::error!(tenant = %key, offset = message.offset(), error = %e, "Skipping an undecodable tenant record.");
                    consumer.commit_message(&message, CommitMode::Async)?;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Schema registry unavailable; will retry this record.");
                    seek_back(&consumer, &message)?;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        // Retry database failures on the same record: skipping it would lose the tenant.
        let mut backoff = Duration::from_millis(100);
        loop {
            match upsert(
                &pool,
                &key,
                tenant.as_ref(),
                message.partition(),
                message.offset(),
            )
            .await
            {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(tenant = %key, error = %e, "Writing the tenant view failed; retrying.");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        consumer.commit_message(&message, CommitMode::Async)?;
    }
    tracing::info!("Tenant view connector stopped.");
    Ok(())
}

fn seek_back(
    consumer: &StreamConsumer,
    message: &rdkafka::message::BorrowedMessage<'_>,
) -> Result<(), ViewError> {
    consumer.seek(
        message.topic(),
        message.partition(),
        rdkafka::Offset::Offset(message.offset()),
        Duration::from_secs(5),
    )?;
    Ok(())
}
