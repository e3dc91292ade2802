//! The view connectors: materialize the compacted entity topics into PostgreSQL. Two consumer
//! groups run the same loop: one for the platform's entities (tenants, offerings, campaigns)
//! and one for the storefront's (baskets, pool numbers, orders), so shoppers' traffic never delays a
//! brand partner's catalog change.
//!
//! At-least-once consumption made idempotent by version guards in every upsert: replaying a
//! record, or receiving an older one after a newer one, leaves the row as it is. A record's
//! offset is committed only after its row is written or the record is dead-lettered.
//!
//! Failures follow [`crate::dead_letter`]: while the database (or the schema registry) is
//! unreachable the connector waits on the same record with capped backoff, however long the
//! outage lasts, and never dead-letters for it; a record the database refuses (a NUL byte in
//! a text, a constraint) goes to `<topic>.dlq` at once, one that keeps failing with a passing
//! error after the policy's attempts; then the connector goes on with the next record. So one
//! tenant's bad record never freezes the other tenants' views. Every wait and database call
//! races the stop signal.

use std::pin::Pin;
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
use tcom_schemas::order::OrderSnapshot;
use tcom_schemas::tenant::Tenant;
use tcom_schemas::{Codec, Contract, topics};
use tcom_state::client::KafkaSettings;

use crate::dead_letter::{
    Attempts, ConnectorMetrics, DeadLetters, Failure, Next, classify_sqlx, describe_sqlx,
    unless_stopped,
};
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
pub const STOREFRONT_TOPICS: &[&str] = &[topics::BASKETS, topics::MSISDN_NUMBERS, topics::ORDERS];

/// Errors of the connector.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("dead-letter topics: {0}")]
    Topics(#[from] tcom_state::Error),
}

pub use crate::dead_letter::Options;

/// A decoded record of one of the view topics.
enum Row {
    /// Boxed: a tenant's settings are far larger than the other rows.
    Tenant(Option<Box<Tenant>>),
    Offering(Option<ProductOffering>),
    Campaign(Option<Campaign>),
    Basket(Option<BasketSnapshot>),
    Number(Option<PhoneNumber>),
    Order(Option<OrderSnapshot>),
}

/// A failed attempt at a record: its kind and what to log and put in `dlq.error`.
type Failed = (Failure, String);

async fn decode_value<T: Contract>(
    codec: &Codec,
    bytes: Option<&[u8]>,
) -> Result<Option<T>, Failed> {
    let Some(bytes) = bytes else {
        return Ok(None);
    };
    match codec.decode::<T>(bytes).await {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.is_retryable() => Err((
            Failure::Unavailable,
            format!("schema registry unavailable: {e}"),
        )),
        Err(e) => Err((Failure::Permanent, format!("undecodable record: {e}"))),
    }
}

async fn decode(codec: &Codec, message: &BorrowedMessage<'_>) -> Result<Row, Failed> {
    let payload = message.payload();
    match message.topic() {
        topics::TENANTS => decode_value(codec, payload)
            .await
            .map(|t| Row::Tenant(t.map(Box::new))),
        topics::CATALOG_OFFERINGS => decode_value(codec, payload).await.map(Row::Offering),
        topics::CATALOG_CAMPAIGNS => decode_value(codec, payload).await.map(Row::Campaign),
        topics::BASKETS => decode_value(codec, payload).await.map(Row::Basket),
        topics::MSISDN_NUMBERS => decode_value(codec, payload).await.map(Row::Number),
        topics::ORDERS => decode_value(codec, payload).await.map(Row::Order),
        other => Err((
            Failure::Permanent,
            format!("a record from {other}, a topic this connector does not handle"),
        )),
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
        Row::Tenant(t) => tenant_view::upsert(pool, key, t.as_deref(), partition, offset).await,
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
        Row::Order(o) => match o {
            Some(o) => storefront_view::upsert_order(pool, o).await,
            None => Ok(()),
        },
    }
}

/// One attempt at a record: decode and write.
async fn attempt(
    codec: &Codec,
    pool: &PgPool,
    message: &BorrowedMessage<'_>,
    key: &str,
) -> Result<(), Failed> {
    let row = decode(codec, message).await?;
    write(pool, key, &row, message.partition(), message.offset())
        .await
        .map_err(|e| (classify_sqlx(&e), describe_sqlx(&e)))
}

/// What became of a record.
enum Handled {
    /// Written, or dead-lettered: commit its offset.
    Done,
    /// The stop signal came first.
    Stopped,
}

struct Connector<'a> {
    pool: &'a PgPool,
    codec: &'a Codec,
    options: &'a Options,
    dead_letters: &'a DeadLetters,
}

impl Connector<'_> {
    /// Writes the record, retrying and dead-lettering as [`crate::dead_letter`] says.
    async fn handle(
        &self,
        message: &BorrowedMessage<'_>,
        key: &str,
        mut stop: Pin<&mut impl Future<Output = ()>>,
    ) -> Handled {
        let metrics = &self.options.metrics;
        let mut attempts = Attempts::new(self.options.retry);
        let error = loop {
            let Some(result) =
                unless_stopped(stop.as_mut(), attempt(self.codec, self.pool, message, key)).await
            else {
                return Handled::Stopped;
            };
            let (failure, error) = match result {
                Ok(()) => {
                    metrics.set_stalled(false);
                    ConnectorMetrics::add(&metrics.written);
                    return Handled::Done;
                }
                Err(failed) => failed,
            };
            match attempts.after(failure) {
                Next::DeadLetter => break error,
                Next::RetryAfter(wait) => {
                    ConnectorMetrics::add(&metrics.retries);
                    if failure == Failure::Unavailable {
                        metrics.set_stalled(true);
                        tracing::warn!(topic = message.topic(), key, error = %error, retry_in_ms = wait.as_millis() as u64, "Cannot write views now; waiting and retrying the same record.");
                    } else {
                        tracing::warn!(topic = message.topic(), key, error = %error, retry_in_ms = wait.as_millis() as u64, "Writing a view row failed; retrying.");
                    }
                    if unless_stopped(stop.as_mut(), tokio::time::sleep(wait))
                        .await
                        .is_none()
                    {
                        return Handled::Stopped;
                    }
                }
            }
        };
        metrics.set_stalled(false);
        tracing::error!(
            topic = message.topic(),
            partition = message.partition(),
            offset = message.offset(),
            key,
            error = %error,
            "A view record can never be written; dead-lettering it and going on."
        );
        let mut retry = 0;
        loop {
            match unless_stopped(stop.as_mut(), self.dead_letters.send(message, &error)).await {
                None => return Handled::Stopped,
                Some(Ok(())) => break,
                Some(Err(e)) => {
                    ConnectorMetrics::add(&metrics.retries);
                    let wait = self.options.retry.backoff(retry);
                    retry += 1;
                    tracing::warn!(error = %e, "Sending a dead letter failed; retrying.");
                    if unless_stopped(stop.as_mut(), tokio::time::sleep(wait))
                        .await
                        .is_none()
                    {
                        return Handled::Stopped;
                    }
                }
            }
        }
        ConnectorMetrics::add(&metrics.dead_letters);
        Handled::Done
    }
}

/// Runs the connector on `topics` in consumer group `group_id` (normally [`GROUP_ID`] with
/// [`TOPICS`], or [`STOREFRONT_GROUP_ID`] with [`STOREFRONT_TOPICS`]) until `shutdown`
/// resolves, with the default [`Options`].
///
/// # Errors
/// The consumer cannot be created or subscribed, or the dead-letter topics created.
pub async fn run(
    kafka: KafkaSettings,
    group_id: String,
    topics: &[&str],
    pool: PgPool,
    codec: Arc<Codec>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ViewError> {
    run_with(
        kafka,
        group_id,
        topics,
        pool,
        codec,
        Options::default(),
        shutdown,
    )
    .await
}

/// [`run`] with the given retry policy and metrics.
///
/// # Errors
/// The consumer cannot be created or subscribed, or the dead-letter topics created.
pub async fn run_with(
    kafka: KafkaSettings,
    group_id: String,
    topics: &[&str],
    pool: PgPool,
    codec: Arc<Codec>,
    options: Options,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ViewError> {
    tokio::pin!(shutdown);
    let specs = crate::dead_letter::topic_specs(topics);
    match unless_stopped(
        shutdown.as_mut(),
        tcom_state::admin::ensure_topics(&kafka, &specs),
    )
    .await
    {
        None => return Ok(()),
        Some(created) => created?,
    }
    let dead_letters = DeadLetters::new(&kafka, &group_id)?;
    let consumer: StreamConsumer = kafka.read_committed_consumer(&group_id).create()?;
    consumer.subscribe(topics)?;
    let connector = Connector {
        pool: &pool,
        codec: &codec,
        options: &options,
        dead_letters: &dead_letters,
    };
    tracing::info!(group = %group_id, "View connector started.");
    loop {
        let message = tokio::select! {
            biased;
            () = &mut shutdown => break,
            message = consumer.recv() => message,
        };
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "Kafka receive failed; retrying.");
                let wait = tokio::time::sleep(Duration::from_millis(500));
                if unless_stopped(shutdown.as_mut(), wait).await.is_none() {
                    break;
                }
                continue;
            }
        };
        let key = message
            .key()
            .map(String::from_utf8_lossy)
            .unwrap_or_default()
            .into_owned();
        match connector.handle(&message, &key, shutdown.as_mut()).await {
            Handled::Done => {
                // A failed commit is not fatal: the record comes again and is written again
                // (idempotently) or dead-lettered again.
                if let Err(e) = consumer.commit_message(&message, CommitMode::Async) {
                    tracing::warn!(error = %e, topic = message.topic(), "Committing a view offset failed.");
                }
            }
            Handled::Stopped => break,
        }
    }
    tracing::info!("View connector stopped.");
    Ok(())
}
