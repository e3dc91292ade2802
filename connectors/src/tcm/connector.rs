//! The TCM connector: sends `tcm.commands` to the legacy TCM system and reports its answers
//! on `tcm.events`.
//!
//! One command at a time, in order (TCM is slow; what matters is that nothing is lost or
//! created twice, not throughput). A command's offset is committed only once its answer is on
//! `tcm.events`; every create carries an `X-Request-Id` derived from the command id, so a
//! command sent again after a crash or a lost answer finds what the first send created.
//!
//! - TCM unavailable (connection refused, a hang, 5xx, the maintenance page): the circuit
//!   breaker counts it; the command waits with capped backoff and is sent again — never
//!   dead-lettered, because an outage must not empty the topic. The order is told once
//!   (`ActivationDelayed`), so it shows why it waits; `tcom_connector_breaker_state` (0 closed, 1 open, 2 half-open) and
//!   `tcom_connector_stalled` say so to the operator.
//! - Rate-limited: wait as TCM asks; not an outage.
//! - Refused (409, 422, 400): `ActivationRefused`; the order decides (it holds the item).
//! - A record that does not decode: dead-lettered with the runtime's `dlq.*` headers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tcom_schemas::tcm::{
    ActivateSubscription, ActivationDelayed, ActivationRefused, SubscriptionActivated, TcmCommand,
    TcmCommandPayload, TcmEvent, TcmEventPayload,
};
use tcom_schemas::{Codec, topics};
use tcom_state::client::KafkaSettings;

use super::client::{NewCustomer, NewSubscription, SharedSim, TcmClient, TcmError};
use crate::circuit_breaker::{Admission, BreakerSettings, CircuitBreaker};
use crate::dead_letter::{ConnectorMetrics, DeadLetters, unless_stopped};
use crate::personal_data::{KeyStore, field_context};

/// The connector's consumer group.
pub const GROUP_ID: &str = "tcom-connector-tcm";

/// Why the connector stopped.
#[derive(Debug, thiserror::Error)]
pub enum TcmConnectorError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("topics: {0}")]
    Topics(#[from] tcom_state::Error),
    #[error("a TCM event does not fit its schema (a bug): {0}")]
    Encode(String),
}

/// How the connector treats TCM.
#[derive(Debug, Clone)]
pub struct TcmOptions {
    pub breaker: BreakerSettings,
    /// The longest wait between two sends of a command TCM could not take.
    pub max_backoff: Duration,
    /// Where commands come from and answers go (the platform's topics; tests use their own).
    pub commands_topic: String,
    pub events_topic: String,
}

impl Default for TcmOptions {
    fn default() -> Self {
        Self {
            breaker: BreakerSettings::default(),
            max_backoff: Duration::from_secs(30),
            commands_topic: topics::TCM_COMMANDS.to_owned(),
            events_topic: topics::TCM_EVENTS.to_owned(),
        }
    }
}

/// What the connector talks to and how.
#[derive(Debug)]
pub struct TcmSetup {
    pub client: TcmClient,
    /// Opens the owner's sealed name for TCM; without it TCM gets the customer id.
    pub keys: Option<KeyStore>,
    pub options: TcmOptions,
    pub metrics: Arc<ConnectorMetrics>,
}

struct Connector {
    tcm: TcmClient,
    keys: Option<KeyStore>,
    codec: Arc<Codec>,
    producer: FutureProducer,
    dead_letters: DeadLetters,
    metrics: Arc<ConnectorMetrics>,
    options: TcmOptions,
    breaker: CircuitBreaker,
}

/// What became of one command.
enum Outcome {
    Answered(TcmEventPayload),
    /// The stop signal came while the command waited.
    Stopped,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

impl Connector {
    /// The owner's name for TCM, opened with the customer's data key; the customer id when
    /// there is none (no owner verification) or it cannot be opened (the customer erased).
    async fn owner_name(&self, tenant: &str, activate: &ActivateSubscription) -> String {
        let fallback = || format!("customer {}", activate.customer_id);
        let (Some(sealed), Some(keys)) = (&activate.owner_name_sealed, &self.keys) else {
            return fallback();
        };
        match keys.data_key(tenant, &activate.customer_id).await {
            Ok(Some(key)) => key
                .open_text(
                    sealed,
                    &field_context(tenant, &activate.customer_id, "name"),
                )
                .unwrap_or_else(|_| fallback()),
            Ok(None) => fallback(),
            Err(e) => {
                tracing::warn!(error = %e, "Owner's name not opened for TCM (key store).");
                fallback()
            }
        }
    }

    async fn send_once(
        &self,
        command: &TcmCommand,
        activate: &ActivateSubscription,
    ) -> Result<TcmEventPayload, TcmError> {
        let tenant = &command.tenant_id;
        let customer = self
            .tcm
            .create_customer(
                // One TCM customer per platform customer, whichever order or item asks first.
                &format!("customer:{tenant}:{}", activate.customer_id),
                &NewCustomer {
                    external_ref: activate.customer_id.clone(),
                    tenant: tenant.clone(),
                    name: self.owner_name(tenant, activate).await,
                    birth_date: None,
                    email: None,
                    address: None,
                },
            )
            .await?;
        let subscription = self
            .tcm
            .create_subscription(
                &format!("{}:subscription", command.command_id),
                &NewSubscription {
                    customer_id: customer.customer_id.clone(),
                    external_ref: format!("{}/{}", command.order_id, activate.item_id),
                    tenant: tenant.clone(),
                    plan_code: activate.plan_code.clone(),
                    msisdn: activate.msisdn.clone(),
                    iccid: activate.iccid.clone(),
                    sim_type: activate.sim_type.clone(),
                    binding_end_date: activate.binding_end_date.clone(),
                    shared_data_sims: activate
                        .shared_data_sims
                        .iter()
                        .map(|iccid| SharedSim {
                            iccid: iccid.clone(),
                        })
                        .collect(),
                },
            )
            .await?;
        Ok(TcmEventPayload::SubscriptionActivated(
            SubscriptionActivated {
                item_id: activate.item_id.clone(),
                subscription_id: subscription.subscription_id,
                tcm_customer_id: customer.customer_id,
            },
        ))
    }

    /// Publishes the breaker's state as the `tcom_connector_breaker_state` gauge.
    fn show_breaker(&self) {
        self.metrics.breaker_state.store(
            self.breaker.state().gauge(),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Sends the command until TCM answers it (or the stop signal comes).
    async fn handle(
        &mut self,
        command: &TcmCommand,
        mut stop: Pin<&mut impl Future<Output = ()>>,
    ) -> Result<Outcome, TcmConnectorError> {
        let TcmCommandPayload::ActivateSubscription(activate) = &command.payload;
        let mut delay_said = false;
        let mut retry: u32 = 0;
        loop {
            let admission = self.breaker.admit(Instant::now());
            self.show_breaker();
            let wait = match admission {
                Admission::Refused { retry_at } => {
                    retry_at.saturating_duration_since(Instant::now())
                }
                Admission::Allowed => match self.send_once(command, activate).await {
                    Ok(answer) => {
                        self.breaker.succeeded();
                        self.show_breaker();
                        self.metrics.set_stalled(false);
                        return Ok(Outcome::Answered(answer));
                    }
                    Err(TcmError::Refused { code, message }) => {
                        // TCM is healthy: it refused this request.
                        self.breaker.succeeded();
                        self.show_breaker();
                        return Ok(Outcome::Answered(TcmEventPayload::ActivationRefused(
                            ActivationRefused {
                                item_id: activate.item_id.clone(),
                                code,
                                reason: message,
                            },
                        )));
                    }
                    Err(TcmError::RateLimited { retry_after }) => retry_after,
                    Err(TcmError::Unavailable(why)) => {
                        let before = self.breaker.state().name();
                        self.breaker.failed(Instant::now());
                        self.show_breaker();
                        let after = self.breaker.state().name();
                        if before != after {
                            tracing::warn!(
                                from = before,
                                to = after,
                                why,
                                "TCM circuit breaker changed."
                            );
                        }
                        self.metrics.set_stalled(true);
                        if !delay_said {
                            delay_said = true;
                            let delayed = TcmEventPayload::ActivationDelayed(ActivationDelayed {
                                item_id: activate.item_id.clone(),
                                reason: format!("TCM unavailable: {why}"),
                            });
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

    /// Puts an answer on `tcm.events`, retrying while Kafka or the registry is away (racing
    /// the stop signal: `Ok(false)` when it came first). A value the schema refuses is a bug:
    /// the connector stops with the error instead of retrying it for ever.
    async fn publish(
        &self,
        command: &TcmCommand,
        payload: TcmEventPayload,
        mut stop: Pin<&mut impl Future<Output = ()>>,
    ) -> Result<bool, TcmConnectorError> {
        let event = TcmEvent {
            event_id: uuid::Uuid::now_v7().to_string(),
            tenant_id: command.tenant_id.clone(),
            order_id: command.order_id.clone(),
            occurred_at: now_ms(),
            cause: command.command_id.clone(),
            payload,
        };
        let key = format!("{}:{}", command.tenant_id, command.order_id);
        loop {
            let waited = match self.codec.encode(&event).await {
                Err(e) if !e.is_retryable() => {
                    return Err(TcmConnectorError::Encode(e.to_string()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Encoding a TCM event failed (registry); retrying.");
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
                            tracing::warn!(error = %e, "Producing a TCM event failed; retrying.");
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
}

/// Runs the connector until `shutdown` resolves.
///
/// # Errors
/// The consumer or producer cannot be created, or the topics not ensured.
pub async fn run(
    kafka: KafkaSettings,
    group_id: String,
    codec: Arc<Codec>,
    setup: TcmSetup,
    shutdown: impl Future<Output = ()>,
) -> Result<(), TcmConnectorError> {
    let TcmSetup {
        client: tcm,
        keys,
        options,
        metrics,
    } = setup;
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
    let mut connector = Connector {
        tcm,
        keys,
        codec,
        producer: kafka.idempotent_producer().create()?,
        dead_letters: DeadLetters::new(&kafka, &group_id)?,
        metrics,
        breaker: CircuitBreaker::new(options.breaker),
        options,
    };
    tracing::info!(group = %group_id, "TCM connector started.");
    loop {
        let message: OwnedMessage = match unless_stopped(shutdown.as_mut(), consumer.recv()).await {
            None => break,
            Some(Ok(m)) => m.detach(),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "Kafka receive failed; retrying.");
                if unless_stopped(
                    shutdown.as_mut(),
                    tokio::time::sleep(Duration::from_millis(500)),
                )
                .await
                .is_none()
                {
                    break;
                }
                continue;
            }
        };
        let decoded = loop {
            let Some(bytes) = message.payload() else {
                break Err("a record without a value".to_owned());
            };
            match connector.codec.decode::<TcmCommand>(bytes).await {
                Ok(command) => break Ok(command),
                Err(e) if e.is_retryable() => {
                    // The registry is away: the record is fine, wait for it.
                    connector.metrics.set_stalled(true);
                    tracing::warn!(error = %e, "Schema registry unavailable; waiting.");
                    let wait = tokio::time::sleep(Duration::from_millis(500));
                    if unless_stopped(shutdown.as_mut(), wait).await.is_none() {
                        tracing::info!("TCM connector stopped.");
                        return Ok(());
                    }
                }
                Err(e) => break Err(format!("undecodable record: {e}")),
            }
        };
        match decoded {
            Ok(command) => match connector.handle(&command, shutdown.as_mut()).await? {
                Outcome::Stopped => break,
                Outcome::Answered(answer) => {
                    // Stopped before the answer is out: not committed, sent again next time.
                    if !connector
                        .publish(&command, answer, shutdown.as_mut())
                        .await?
                    {
                        break;
                    }
                    ConnectorMetrics::add(&connector.metrics.written);
                }
            },
            Err(why) => {
                tracing::error!(
                    why,
                    offset = message.offset(),
                    "Undecodable TCM command dead-lettered."
                );
                connector.dead_letters.send(&message, &why).await?;
                ConnectorMetrics::add(&connector.metrics.dead_letters);
            }
        }
        // The answer is on tcm.events (or the record in the dead-letter topic): done.
        let mut done = rdkafka::TopicPartitionList::new();
        let committed = done
            .add_partition_offset(
                message.topic(),
                message.partition(),
                rdkafka::Offset::Offset(message.offset() + 1),
            )
            .and_then(|()| consumer.commit(&done, CommitMode::Async));
        if let Err(e) = committed {
            tracing::warn!(error = %e, "Committing a TCM command's offset failed (it may come again; TCM's idempotency makes that harmless).");
        }
    }
    tracing::info!("TCM connector stopped.");
    Ok(())
}
