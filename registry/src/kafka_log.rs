//! The registry's durable log: a compacted, single-partition Kafka topic, as in Confluent's
//! registry, so the stand-in survives restarts and needs no database.
//!
//! One registry instance writes at a time (the stand-in does no leader election); every
//! write is acknowledged by the broker before the in-memory state changes.

use std::time::Duration;

use rdkafka::Message;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tcom_state::admin::{TopicSpec, ensure_topics};
use tcom_state::client::KafkaSettings;

use crate::error::{RegistryError, Result};
use crate::log_record::LogRecord;
use crate::state::RegistryState;

/// Appends registry changes to the schemas topic.
pub struct KafkaLog {
    producer: FutureProducer,
    topic: String,
}

impl std::fmt::Debug for KafkaLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaLog")
            .field("topic", &self.topic)
            .finish()
    }
}

fn store_error(e: impl std::fmt::Display) -> RegistryError {
    RegistryError::Store(e.to_string())
}

impl KafkaLog {
    /// Creates the topic if needed, replays it into a fresh state and returns both.
    ///
    /// # Errors
    /// The broker cannot be reached or the topic cannot be read.
    pub async fn open(settings: &KafkaSettings, topic: &str) -> Result<(Self, RegistryState)> {
        ensure_topics(settings, &[TopicSpec::compacted(topic, 1)])
            .await
            .map_err(store_error)?;
        let state = replay(settings.clone(), topic.to_owned()).await?;
        let producer = settings
            .idempotent_producer()
            .set("message.timeout.ms", "15000")
            .create()
            .map_err(store_error)?;
        Ok((
            Self {
                producer,
                topic: topic.to_owned(),
            },
            state,
        ))
    }

    /// Writes records in order and waits for the broker's acknowledgement of each.
    ///
    /// # Errors
    /// [`RegistryError::Store`] when a record is not acknowledged.
    pub async fn append(&self, records: &[LogRecord]) -> Result<()> {
        for record in records {
            let (key, value) = record.to_bytes();
            let mut out = FutureRecord::to(&self.topic).key(&key).partition(0);
            if let Some(value) = value.as_deref() {
                out = out.payload(value);
            }
            self.producer
                .send(out, Duration::from_secs(15))
                .await
                .map_err(|(e, _)| store_error(e))?;
        }
        Ok(())
    }
}

/// Reads the topic from the beginning up to its end as of now.
async fn replay(settings: KafkaSettings, topic: String) -> Result<RegistryState> {
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = settings
            .client_config()
            .set("group.id", "tcom-schema-registry-replay")
            .set("enable.auto.commit", "false")
            .create()
            .map_err(store_error)?;
        let (low, high) = consumer
            .fetch_watermarks(&topic, 0, Duration::from_secs(15))
            .map_err(store_error)?;
        let mut state = RegistryState::default();
        if high <= low {
            return Ok(state);
        }
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(&topic, 0, rdkafka::Offset::Beginning)
            .map_err(store_error)?;
        consumer.assign(&assignment).map_err(store_error)?;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut applied = 0usize;
        loop {
            let Some(message) = consumer.poll(Duration::from_millis(500)) else {
                if std::time::Instant::now() > deadline {
                    return Err(store_error(format!(
                        "replaying {topic} timed out after {applied} records"
                    )));
                }
                continue;
            };
            let message = message.map_err(store_error)?;
            let offset = message.offset();
            match LogRecord::from_bytes(message.key().unwrap_or_default(), message.payload()) {
                Ok(Some(record)) => {
                    state.apply(&record);
                    applied += 1;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(offset, error = %e, "Skipping a malformed record in the schemas topic.")
                }
            }
            if offset + 1 >= high {
                break;
            }
        }
        tracing::info!(topic = %topic, records = applied, "Replayed the schemas topic.");
        Ok(state)
    })
    .await
    .map_err(store_error)?
}
