//! The relay of an outbox topic to an outside system: the order processor writes requests to
//! a command topic inside its transaction (the outbox); a relay sends each to the provider and
//! puts the answer on the events topic, which the order processor reads. The TCM and SIM
//! connectors are relays; what differs between them is a [`Relay`] implementation.
//!
//! One command at a time, in order (these systems are slow; what matters is that nothing is
//! lost or done twice, not throughput). A command's offset is committed only once its answer
//! is on the events topic; every outbound request carries an idempotency key derived from the
//! command id, so a command sent again after a crash or a lost answer finds what the first
//! send did.
//!
//! - Provider unavailable (connection refused, a hang, 5xx, a maintenance page): the circuit
//!   breaker counts it; the command waits with capped backoff and is sent again — never
//!   dead-lettered, because an outage must not empty the topic. The order is told once (the
//!   relay's "delayed" answer), so it shows why it waits; `tcom_connector_breaker_state`
//!   (0 closed, 1 open, 2 half-open) and `tcom_connector_stalled` say so to the operator.
//! - Rate-limited: wait as the provider asks; not an outage.
//! - Refused: the relay's "refused" answer; the order decides (it holds the item).
//! - A record that does not decode: dead-lettered with the runtime's `dlq.*` headers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tcom_schemas::Codec;
use tcom_schemas::contract::Contract;
use tcom_state::client::KafkaSettings;

use crate::circuit_breaker::{Admission, BreakerSettings, CircuitBreaker};
use crate::dead_letter::{ConnectorMetrics, DeadLetters, unless_stopped};

/// How a provider call failed, sorted by what the relay does next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The provider is unwell: retry later with the same idempotency key; counts against
    /// the circuit breaker.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Slow down; the provider is healthy.
    #[error("rate limited: retry after {retry_after:?}")]
    RateLimited { retry_after: Duration },
    /// The provider refused the request itself: sending it again changes nothing.
    #[error("refused: {code}: {message}")]
    Refused { code: String, message: String },
}

/// Milliseconds since the epoch, for the events a relay writes.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// What a relay does with its provider.
pub trait Relay: Send + Sync {
    type Command: Contract;
    type Event: Contract;
    /// The answers; one command may have several (a shipment's tracking events).
    type Answer: Send;

    /// For logs: "TCM", "SIM".
    fn name(&self) -> &'static str;

    /// Carries one command out (idempotently: it may be sent again after a crash).
    fn send(
        &self,
        command: &Self::Command,
    ) -> impl Future<Output = Result<Vec<Self::Answer>, SendError>> + Send;

    /// The answer that tells the order the provider is unavailable (`why`).
    fn delayed(&self, command: &Self::Command, why: &str) -> Self::Answer;

    /// The answer that tells the order the provider refused the command.
    fn refused(&self, command: &Self::Command, code: String, message: String) -> Self::Answer;

    /// The event that carries an answer, keyed as [`Relay::key`] says.
    fn event(&self, command: &Self::Command, answer: Self::Answer) -> Self::Event;

    /// The events' key (`tenant:order`: the order processor's partitioning).
    fn key(&self, command: &Self::Command) -> String;
}

/// Why the relay stopped.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("topics: {0}")]
    Topics(#[from] tcom_state::Error),
    #[error("an event does not fit its schema (a bug): {0}")]
    Encode(String),
}

/// How the relay treats its provider, and its topics.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    pub breaker: BreakerSettings,
    /// The longest wait between two sends of a command the provider could not take.
    pub max_backoff: Duration,
    /// Where commands come from and answers go (the platform's topics; tests use their own).
    pub commands_topic: String,
    pub events_topic: String,
}

impl RelayOptions {
    /// The platform's topics with the default breaker and backoff.
    pub fn for_topics(commands_topic: &str, events_topic: &str) -> Self {
        Self {
            breaker: BreakerSettings::default(),
            max_backoff: Duration::from_secs(30),
            commands_topic: commands_topic.to_owned(),
            events_topic: events_topic.to_owned(),
        }
    }
}

struct Relayer<R: Relay> {
    relay: R,
    codec: Arc<Codec>,
    producer: FutureProducer,
    dead_letters: DeadLetters,
    metrics: Arc<ConnectorMetrics>,
    options: RelayOptions,
    breaker: CircuitBreaker,
}

/// What became of one command.
enum Outcome<A> {
    Answered(Vec<A>),
    /// The stop signal came while the command waited.
    Stopped,
}

impl<R: Relay> Relayer<R> {
    /// Publishes the breaker's state as the `tcom_connector_breaker_state` gauge.
    fn show_breaker(&self) {
        self.metrics.breaker_state.store(
            self.breaker.state().gauge(),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Sends the command until the provider answers it (or the stop signal comes).
    async fn handle(
        &mut self,
        command: &R::Command,
        mut stop: Pin<&mut impl Future<Output = ()>>,
    ) -> Result<Outcome<R::Answer>, RelayError> {
        let mut delay_said = false;
        let mut retry: u32 = 0;
        loop {
            let admission = self.breaker.admit(Instant::now());
            self.show_breaker();
            let wait = match admission {
                Admission::Refused { retry_at } => {
                    retry_at.saturating_duration_since(Instant::now())
                }
                Admission::Allowed => match self.relay.send(command).await {
                    Ok(answers) => {
                        self.breaker.succeeded();
                        self.show_breaker();
                        self.metrics.set_stalled(false);
                        return Ok(Outcome::Answered(answers));
                    }
                    Err(SendError::Refused { code, message }) => {
                        // The provider is healthy: it refused this request.
                        self.breaker.succeeded();
                        self.show_breaker();
                        let refused = self.relay.refused(command, code, message);
                        return Ok(Outcome::Answered(vec![refused]));
                    }
                    Err(SendError::RateLimited { retry_after }) => retry_after,
                    Err(SendError::Unavailable(why)) => {
                        let before = self.breaker.state().name();
                        self.breaker.failed(Instant::now());
                        self.show_breaker();
                        let after = self.breaker.state().name();
                        if before != after {
                            tracing::warn!(
                                provider = self.relay.name(),
                                from = before,
                                to = after,
                                why,
                                "Circuit breaker changed."
                            );
                        }
                        self.metrics.set_stalled(true);
                        if !delay_said {
                            delay_said = true;
                            let why = format!("{} unavailable: {why}", self.relay.name());
                            let delayed = self.relay.delayed(command, &why);
                            if !self.publish(command, delayed, stop.as_mut()).await? {
                                return Ok(Outcome::Stopped);
                            }
                        }
                        retry += 1;
                        let exponent = retry.min(8);
                        Duration::from_millis(100 * (1 << exponent)).min(self.options.max_backoff)
                    }
                },
            };
            if unless_stopped(stop.as_mut(), tokio::time::sleep(wait))
                .await
                .is_none()
            {
                return Ok(Outcome::Stopped);
            }
        }
    }

    /// Puts an answer on the events topic, retrying while Kafka or the registry is away
    /// (racing the stop signal: `Ok(false)` when it came first). A value the schema refuses
    /// is a bug: the relay stops with the error instead of retrying it for ever.
    async fn publish(
        &self,
        command: &R::Command,
        answer: R::Answer,
        mut stop: Pin<&mut impl Future<Output = ()>>,
    ) -> Result<bool, RelayError> {
        let event = self.relay.event(command, answer);
        let key = self.relay.key(command);
        loop {
            let waited = match self.codec.encode(&event).await {
                Err(e) if !e.is_retryable() => return Err(RelayError::Encode(e.to_string())),
                Err(e) => {
                    tracing::warn!(error = %e, "Encoding an event failed (registry); retrying.");
                    self.metrics.set_stalled(true);
                    unless_stopped(
                        stop.as_mut(),
                        tokio::time::sleep(Duration::from_millis(500)),
                    )
                    .await
                }
                Ok(bytes) => {
                    let record = FutureRecord::to(&self.options.events_topic)
                        .key(&key)
                        .payload(&bytes);
                    match unless_stopped(
                        stop.as_mut(),
                        self.producer.send(record, Duration::from_secs(30)),
                    )
                    .await
                    {
                        None => None,
                        Some(Ok(_)) => return Ok(true),
                        Some(Err((e, _))) => {
                            tracing::warn!(error = %e, "Producing an event failed; retrying.");
                            ConnectorMetrics::add(&self.metrics.retries);
                            unless_stopped(
                                stop.as_mut(),
                                tokio::time::sleep(Duration::from_millis(500)),
                            )
                            .await
                        }
                    }
                }
            };
            if waited.is_none() {
                return Ok(false);
            }
        }
    }

    /// Decodes a command, waiting while the registry is away (`None`: stopped meanwhile).
    async fn decode(
        &self,
        message: &OwnedMessage,
        mut stop: Pin<&mut impl Future<Output = ()>>,
    ) -> Option<Result<R::Command, String>> {
        loop {
            let Some(bytes) = message.payload() else {
                return Some(Err("a record without a value".to_owned()));
            };
            match self.codec.decode::<R::Command>(bytes).await {
                Ok(command) => return Some(Ok(command)),
                Err(e) if e.is_retryable() => {
                    // The registry is away: the record is fine, wait for it.
                    self.metrics.set_stalled(true);
                    tracing::warn!(error = %e, "Schema registry unavailable; waiting.");
                    let wait = tokio::time::sleep(Duration::from_millis(500));
                    unless_stopped(stop.as_mut(), wait).await?;
                }
                Err(e) => return Some(Err(format!("undecodable record: {e}"))),
            }
        }
    }
}

/// Runs the relay until `shutdown` resolves.
///
/// # Errors
/// The consumer or producer cannot be created, the topics not ensured, or an answer does not
/// fit its schema.
pub async fn run<R: Relay>(
    kafka: KafkaSettings,
    group_id: String,
    codec: Arc<Codec>,
    relay: R,
    options: RelayOptions,
    metrics: Arc<ConnectorMetrics>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RelayError> {
    tokio::pin!(shutdown);
    let mut specs = crate::dead_letter::topic_specs(&[options.commands_topic.as_str()]);
    specs.push(tcom_state::admin::TopicSpec::new(
        &options.commands_topic,
        6,
    ));
    specs.push(tcom_state::admin::TopicSpec::new(&options.events_topic, 6));
    match unless_stopped(
        shutdown.as_mut(),
        tcom_state::admin::ensure_topics(&kafka, &specs),
    )
    .await
    {
        None => return Ok(()),
        Some(created) => created?,
    }
    let consumer: StreamConsumer = kafka.read_committed_consumer(&group_id).create()?;
    consumer.subscribe(&[options.commands_topic.as_str()])?;
    let name = relay.name();
    let mut relayer = Relayer {
        relay,
        codec,
        producer: kafka.idempotent_producer().create()?,
        dead_letters: DeadLetters::new(&kafka, &group_id)?,
        metrics,
        breaker: CircuitBreaker::new(options.breaker),
        options,
    };
    tracing::info!(group = %group_id, provider = name, "Outbox relay started.");
    loop {
        let message: OwnedMessage = match unless_stopped(shutdown.as_mut(), consumer.recv()).await {
            None => break,
            Some(Ok(m)) => m.detach(),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "Kafka receive failed; retrying.");
                let wait = tokio::time::sleep(Duration::from_millis(500));
                if unless_stopped(shutdown.as_mut(), wait).await.is_none() {
                    break;
                }
                continue;
            }
        };
        let Some(decoded) = relayer.decode(&message, shutdown.as_mut()).await else {
            break;
        };
        match decoded {
            Ok(command) => match relayer.handle(&command, shutdown.as_mut()).await? {
                Outcome::Stopped => break,
                Outcome::Answered(answers) => {
                    let mut published = true;
                    for answer in answers {
                        // Stopped before every answer is out: not committed, sent again
                        // next time (the provider's idempotency and the order's
                        // deduplication make that harmless).
                        if !relayer.publish(&command, answer, shutdown.as_mut()).await? {
                            published = false;
                            break;
                        }
                        ConnectorMetrics::add(&relayer.metrics.written);
                    }
                    if !published {
                        break;
                    }
                }
            },
            Err(why) => {
                tracing::error!(
                    provider = name,
                    why,
                    offset = message.offset(),
                    "Undecodable command dead-lettered."
                );
                relayer.dead_letters.send(&message, &why).await?;
                ConnectorMetrics::add(&relayer.metrics.dead_letters);
            }
        }
        // The answers are on the events topic (or the record in the dead-letter topic): done.
        let mut done = rdkafka::TopicPartitionList::new();
        let committed = done
            .add_partition_offset(
                message.topic(),
                message.partition(),
                rdkafka::Offset::Offset(message.offset() + 1),
            )
            .and_then(|()| consumer.commit(&done, CommitMode::Async));
        if let Err(e) = committed {
            tracing::warn!(error = %e, "Committing a command's offset failed (it may come again; the provider's idempotency makes that harmless).");
        }
    }
    tracing::info!(provider = name, "Outbox relay stopped.");
    Ok(())
}
