//! Publishing commands to Kafka and waiting for their outcome (DESIGN section 6).
//!
//! Each command gets a unique id (or the caller's `Idempotency-Key`, scoped to the tenant),
//! travels with `command-id`, `reply-to` and `tenant` headers, and is produced by an
//! idempotent producer. The request then waits, bounded, for the processor's reply; if none
//! comes in time the caller gets 202 with a location to poll.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tcom_processors::outcome::ReplyMessage;
use tcom_schemas::{Codec, Contract};
use tcom_state::client::KafkaSettings;

use crate::command_api::CommandId;
use crate::problem::Problem;
use crate::replies::ReplyRouter;

/// Sends commands and waits for replies.
#[derive(Clone)]
pub struct CommandBus {
    producer: FutureProducer,
    codec: Arc<Codec>,
    replies: Arc<ReplyRouter>,
    timeout: Duration,
    delivery_timeout: Duration,
}

impl std::fmt::Debug for CommandBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandBus")
            .field("reply_to", &self.replies.instance_id())
            .finish_non_exhaustive()
    }
}

/// Milliseconds since the Unix epoch: the `issued_at` of commands and the time business logic
/// uses (processors decide by the command's time, not their own clock).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// How a command ended, as far as this request knows.
#[derive(Debug)]
pub enum Sent {
    /// The processor answered.
    Replied(ReplyMessage),
    /// Published, but no answer in time: the caller polls.
    Pending,
}

impl CommandBus {
    /// A bus producing with `kafka` and waiting up to `timeout` for replies.
    ///
    /// # Errors
    /// The producer cannot be created.
    pub fn new(
        kafka: &KafkaSettings,
        codec: Arc<Codec>,
        replies: Arc<ReplyRouter>,
        timeout: Duration,
        delivery_timeout: Duration,
    ) -> Result<Self, rdkafka::error::KafkaError> {
        Ok(Self {
            // A command is delivered within `delivery_timeout` or not at all, and that bound
            // is shorter than the request's: a request answered 503 "nothing written" never
            // sees its command delivered afterwards.
            producer: kafka
                .idempotent_producer()
                .set("linger.ms", "0")
                .set(
                    "message.timeout.ms",
                    delivery_timeout.as_millis().to_string(),
                )
                .create()?,
            delivery_timeout,
            codec,
            replies,
            timeout,
        })
    }

    /// The reply router (readiness checks it).
    pub fn replies(&self) -> &Arc<ReplyRouter> {
        &self.replies
    }

    /// Publishes an event that nobody answers (e.g. a webhook notification).
    ///
    /// # Errors
    /// A problem (503) when it cannot be encoded or published.
    pub async fn publish<T: Contract>(&self, key: &str, value: &T) -> Result<(), Problem> {
        let bytes = self.codec.encode(value).await.map_err(|e| {
            tracing::error!(error = %e, topic = T::TOPIC, "Cannot encode a record.");
            Problem::unavailable()
        })?;
        self.producer
            .send(
                FutureRecord::to(T::TOPIC).key(key).payload(&bytes),
                self.delivery_timeout,
            )
            .await
            .map(|_| ())
            .map_err(|(e, _)| {
                tracing::error!(error = %e, topic = T::TOPIC, "Cannot publish a record.");
                Problem::unavailable()
            })
    }

    /// Publishes `command` on its topic with `key`, and waits for the outcome.
    ///
    /// # Errors
    /// A problem (503) when the command cannot be encoded or published: nothing was written.
    pub async fn send<T: Contract>(
        &self,
        key: &str,
        tenant: &str,
        id: &CommandId,
        command: &T,
    ) -> Result<Sent, Problem> {
        let command_id = id.id.as_str();
        let value = self.codec.encode(command).await.map_err(|e| {
            tracing::error!(error = %e, topic = T::TOPIC, "Cannot encode a command.");
            Problem::unavailable()
        })?;
        let pending = self.replies.expect(command_id);
        let mut headers = OwnedHeaders::new()
            .insert(Header {
                key: tcom_state::runtime::COMMAND_ID_HEADER,
                value: Some(command_id),
            })
            .insert(Header {
                key: tcom_state::reply::REPLY_TO_HEADER,
                value: Some(self.replies.instance_id()),
            })
            .insert(Header {
                key: tcom_processors::headers::TENANT_HEADER,
                value: Some(tenant),
            });
        if let Some(fingerprint) = &id.fingerprint {
            headers = headers.insert(Header {
                key: tcom_state::reply::COMMAND_FINGERPRINT_HEADER,
                value: Some(fingerprint.as_str()),
            });
        }
        let record = FutureRecord::to(T::TOPIC)
            .key(key)
            .payload(&value)
            .headers(headers);
        self.producer
            .send(record, self.delivery_timeout)
            .await
            .map_err(|(e, _)| {
                tracing::error!(error = %e, topic = T::TOPIC, "Cannot publish a command.");
                Problem::unavailable()
            })?;
        Ok(match pending.wait(self.timeout).await {
            Some(reply) => Sent::Replied(reply),
            None => Sent::Pending,
        })
    }
}
