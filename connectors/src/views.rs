//! The view connectors: materialize the compacted entity topics into PostgreSQL. Two consumer
//! groups run the same loop: one for the platform's entities (tenants, offerings, campaigns)
//! and one for the storefront's (baskets, pool numbers), so shoppers' traffic never delays a
//! brand partner's catalog change.
//!
//! At-least-once consumption made idempotent by version guards in every upsert: replaying a
//! record, or receiving an older one after a newer one, leaves the row as it is. A record's
//! offset is committed only after its row is written; database failures are retried on the
//! same record, so nothing is skipped for a transient reason.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::BorrowedMessage;
use sqlx::PgPool;
use tcom_schemas::basket::BasketSnapshot;
use tcom_schemas::campaign::Campaign;
use tcom_schemas::catalog::ProductOffering;
use tcom_schemas::msisdn::PhoneNumber;
use tcom_schemas::tenant::Tenant;
use tcom_schemas::{Codec, Contract, topics};
use tcom_state::client::KafkaSettings;

use crate::{catalog_view, storefront_view, tenant_view};

/// Consumer group of the platform entity views.
pub const GROUP_ID: &str = "tcom-connector-views";

/// The topics it materializes.
pub const TOPICS: &[&str] = &[
    topics::TENANTS,
    topics::CATALOG_OFFERINGS,
    topics::CATALOG_CAMPAIGNS,
];

/// Consumer group of the storefront views.
pub const STOREFRONT_GROUP_ID: &str = "tcom-connector-storefront-views";

/// The topics it materializes.
pub const STOREFRONT_TOPICS: &[&str] = &[topics::BASKETS, topics::MSISDN_NUMBERS];

/// Errors of the connector.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

/// A decoded record of one of the view topics.
enum Row {
    Tenant(Option<Tenant>),
    Offering(Option<ProductOffering>),
    Campaign(Option<Campaign>),
    Basket(Option<BasketSnapshot>),
    Number(Option<PhoneNumber>),
}

enum Decoded {
    Row(Box<Row>),
    /// Will never decode: logged and skipped.
    Skip,
    /// The registry is unavailable: retry the record.
    Retry,
}

async fn decode_value<T: Contract>(
    codec: &Codec,
    bytes: Option<&[u8]>,
    key: &str,
) -> Result<Option<T>, Decoded> {
    let Some(bytes) = bytes else {
        return Ok(None);
    };
    match codec.decode::<T>(bytes).await {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.is_retryable() => {
            tracing::warn!(error = %e, "Schema registry unavailable; will retry this record.");
            Err(Decoded::Retry)
        }
        Err(e) => {
            tracing::error!(topic = T::TOPIC, key, error = %e, "Skipping an undecodable record.");
            Err(Decoded::Skip)
        }
    }
}

async fn decode(codec: &Codec, message: &BorrowedMessage<'_>, key: &str) -> Decoded {
    let payload = message.payload();
    let row = match message.topic() {
        topics::TENANTS => decode_value(codec, payload, key).await.map(Row::Tenant),
        topics::CATALOG_OFFERINGS => decode_value(codec, payload, key).await.map(Row::Offering),
        topics::CATALOG_CAMPAIGNS => decode_value(codec, payload, key).await.map(Row::Campaign),
        topics::BASKETS => decode_value(codec, payload, key).await.map(Row::Basket),
        topics::MSISDN_NUMBERS => decode_value(codec, payload, key).await.map(Row::Number),
        other => {
            tracing::error!(
                topic = other,
                "Record from a topic this connector does not handle."
            );
            return Decoded::Skip;
        }
    };
    match row {
        Ok(row) => Decoded::Row(Box::new(row)),
        Err(d) => d,
    }
}

/// Writes one decoded record.
async fn write(
    pool: &PgPool,
    key: &str,
    row: &Row,
    partition: i32,
    offset: i64,
) -> Result<(), sqlx::Error> {
    // Entity keys are `tenant:entity`; tenant ids never contain ':'.
    let (tenant, entity) = key.split_once(':').unwrap_or((key, ""));
    match row {
        Row::Tenant(t) => tenant_view::upsert(pool, key, t.as_ref(), partition, offset).await,
        Row::Offering(o) => {
            catalog_view::upsert_offering(pool, tenant, entity, o.as_ref(), partition, offset).await
        }
        Row::Campaign(c) => {
            catalog_view::upsert_campaign(pool, tenant, entity, c.as_ref(), partition, offset).await
        }
        // Baskets and numbers are never deleted (a basket ends in a status), so a tombstone
        // can only be a mistake: nothing to write.
        Row::Basket(b) => match b {
            Some(b) => storefront_view::upsert_basket(pool, b, partition, offset).await,
            None => Ok(()),
        },
        Row::Number(n) => match n {
            Some(n) => storefront_view::upsert_number(pool, n).await,
            None => Ok(()),
        },
    }
}

/// Runs the connector on `topics` in consumer group `group_id` (normally [`GROUP_ID`] with
/// [`TOPICS`], or [`STOREFRONT_GROUP_ID`] with [`STOREFRONT_TOPICS`]) until `shutdown` resolves.
///
/// # Errors
/// The consumer cannot be created or subscribed.
pub async fn run(
    kafka: KafkaSettings,
    group_id: String,
    topics: &[&str],
    pool: PgPool,
    codec: Arc<Codec>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ViewError> {
    let consumer: StreamConsumer = kafka.read_committed_consumer(&group_id).create()?;
    consumer.subscribe(topics)?;
    tracing::info!(group = %group_id, "View connector started.");
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
        let row = match decode(&codec, &message, &key).await {
            Decoded::Row(row) => row,
            Decoded::Skip => {
                consumer.commit_message(&message, CommitMode::Async)?;
                continue;
            }
            Decoded::Retry => {
                consumer.seek(
                    message.topic(),
                    message.partition(),
                    rdkafka::Offset::Offset(message.offset()),
                    Duration::from_secs(5),
                )?;
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut backoff = Duration::from_millis(100);
        while let Err(e) = write(&pool, &key, &row, message.partition(), message.offset()).await {
            tracing::warn!(topic = message.topic(), key = %key, error = %e, "Writing a view row failed; retrying.");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        consumer.commit_message(&message, CommitMode::Async)?;
    }
    tracing::info!("View connector stopped.");
    Ok(())
}
