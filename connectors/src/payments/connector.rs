//! The payments connector: does what `payment.commands` asks at the tenant's provider and
//! reports the provider's answer on `payment.events`, where the order processor reads it.
//!
//! At-least-once, made safe by the providers' idempotency: every call carries an
//! `Idempotency-Key` derived from the command id (order, attempt, operation), so a command
//! processed twice — the connector crashed after the provider answered and before the offset
//! was committed — makes the same call and gets the same answer. The order processor ignores
//! a report that does not move the payment on, so the duplicate report changes nothing.
//!
//! Failures: a provider that is unreachable, overloaded or answering 5xx is waited for with
//! capped backoff on the same record (the `stalled` gauge says so), however long it takes —
//! skipping a command would lose a capture or a void. A request the provider refuses (bad
//! parameters, wrong credentials, a secret that is not there) can never succeed as it is: it is
//! reported as an `ERROR` payment event, which fails the order, and the connector goes on. An
//! undecodable record goes to `payment.commands.dlq`.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use tcom_schemas::payment::{PaymentCommand, PaymentCommandPayload, PaymentEvent, PaymentState};
use tcom_schemas::{Codec, topics};
use tcom_state::client::KafkaSettings;
use tcom_state::reply::{ORIGIN_COMMAND_ID_HEADER, ORIGIN_REPLY_TO_HEADER};

use super::adyen::{AdyenClient, NotificationItem, payment_from_notification};
use super::stripe::StripeClient;
use super::{PaymentRequest, PaymentStatus, ProviderError, ProviderPayment};
use crate::dead_letter::{
    Attempts, ConnectorMetrics, DeadLetters, Failure, Next, Options, unless_stopped,
};
use crate::secrets::SecretStore;

/// Consumer group of the payments connector.
pub const GROUP_ID: &str = "tcom-connector-payments";

/// Where the providers are, and the HTTP client (one connection pool) every call shares.
#[derive(Debug, Clone)]
pub struct ProviderEndpoints {
    pub stripe_url: String,
    pub adyen_url: String,
    pub secrets: SecretStore,
    http: reqwest::Client,
}

impl ProviderEndpoints {
    /// The providers at these base URLs, secrets from `secrets`.
    pub fn new(stripe_url: String, adyen_url: String, secrets: SecretStore) -> Self {
        let http = reqwest::Client::builder()
            .timeout(PROVIDER_TIMEOUT)
            // Providers are called directly; a proxy would only add a hop that sees the keys.
            .no_proxy()
            .build()
            .expect("an HTTP client without TLS or proxy settings always builds");
        Self {
            stripe_url,
            adyen_url,
            secrets,
            http,
        }
    }
}

/// How long one provider call may take before it counts as unavailable (and is retried).
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors that stop the connector.
#[derive(Debug, thiserror::Error)]
pub enum PaymentsError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("topics: {0}")]
    Topics(#[from] tcom_state::Error),
    /// A lane stopped while the connector was not stopping (a panic in a provider call's
    /// handling): the process must not look alive while commands wait for that lane.
    #[error("a payment lane ended unexpectedly: {0}")]
    LaneEnded(String),
}

/// The platform's word for a provider's payment state.
pub fn state_of(status: PaymentStatus) -> PaymentState {
    match status {
        PaymentStatus::AwaitingShopper => PaymentState::AwaitingShopper,
        PaymentStatus::RequiresAction => PaymentState::RequiresAction,
        PaymentStatus::Processing => PaymentState::Processing,
        PaymentStatus::Authorized => PaymentState::Authorized,
        PaymentStatus::Captured => PaymentState::Captured,
        PaymentStatus::Refused => PaymentState::Refused,
        PaymentStatus::Canceled => PaymentState::Canceled,
        PaymentStatus::Refunded => PaymentState::Refunded,
    }
}

/// What one command came to.
enum Done {
    /// Report this.
    Report(ProviderPayment),
    /// The provider accepted; its outcome comes with a webhook (Adyen's modifications).
    Accepted,
    /// The provider (or the settings) refused for good: report an error.
    Refused(String),
}

/// The idempotency key of a command at the provider: the command id names order, attempt
/// and operation.
fn idempotency_key(command: &PaymentCommand) -> String {
    format!("tcom:{}:{}", command.tenant_id, command.command_id)
}

async fn stripe_call(
    client: &StripeClient,
    command: &PaymentCommand,
) -> Result<Done, ProviderError> {
    let key = idempotency_key(command);
    let payment = match &command.payload {
        PaymentCommandPayload::CreatePayment(create) => {
            let request = PaymentRequest {
                tenant_id: command.tenant_id.clone(),
                order_id: command.order_id.clone(),
                attempt: command.attempt,
                amount_minor: create.amount_minor,
                currency: create.currency.clone(),
                customer_ref: create.customer_id.clone(),
                description: create.description.clone(),
                return_url: create.return_url.clone(),
                save_for_subscription: create.save_for_subscription,
                expires_at: create.expires_at,
            };
            client.create(&request, &key).await?
        }
        PaymentCommandPayload::CapturePayment(c) => {
            client.capture(&c.reference, c.amount_minor, &key).await?
        }
        PaymentCommandPayload::CancelPayment(c) => client.cancel(&c.reference, &key).await?,
        PaymentCommandPayload::RefundPayment(r) => {
            client.refund(&r.reference, r.amount_minor, &key).await?
        }
        // Out-of-order and duplicate webhooks: the state is read again, never taken from the
        // event.
        PaymentCommandPayload::SyncPayment(sync) => match &sync.reference {
            Some(reference) => client.fetch(reference).await?,
            None => return Ok(Done::Refused("a Stripe event without its payment".into())),
        },
    };
    Ok(Done::Report(payment))
}

async fn adyen_call(client: &AdyenClient, command: &PaymentCommand) -> Result<Done, ProviderError> {
    let key = idempotency_key(command);
    match &command.payload {
        PaymentCommandPayload::CreatePayment(create) => {
            let request = PaymentRequest {
                tenant_id: command.tenant_id.clone(),
                order_id: command.order_id.clone(),
                attempt: command.attempt,
                amount_minor: create.amount_minor,
                currency: create.currency.clone(),
                customer_ref: create.customer_id.clone(),
                description: create.description.clone(),
                return_url: create.return_url.clone(),
                save_for_subscription: create.save_for_subscription,
                expires_at: create.expires_at,
            };
            Ok(Done::Report(client.create(&request, &key).await?))
        }
        // A modification's `reference` is the order id: Adyen echoes it as the webhook's
        // `merchantReference`, by which the ingress finds the order again.
        PaymentCommandPayload::CapturePayment(c) => {
            client
                .capture(
                    &c.reference,
                    c.amount_minor,
                    &c.currency,
                    &command.order_id,
                    &key,
                )
                .await?;
            Ok(Done::Accepted)
        }
        // Nothing was paid yet: only the session exists, and Adyen has no call to cancel one.
        // It is reported canceled here; the session expires at its `expiresAt` (the end of the
        // freeze window), and an authorisation that still arrives for it is voided by the
        // order, which is canceled by then.
        PaymentCommandPayload::CancelPayment(c) if super::adyen::is_session_id(&c.reference) => {
            Ok(Done::Report(super::adyen::canceled_session(&c.reference)))
        }
        // A payment that is already cancelled or refused is not refused with a 422 that could
        // be told apart: Adyen answers `received` and the `CANCELLATION` webhook fails (its
        // documented 422 here, code 167, means an unknown pspReference). So a 422 stays an
        // error.
        PaymentCommandPayload::CancelPayment(c) => {
            client.cancel(&c.reference, &command.order_id, &key).await?;
            Ok(Done::Accepted)
        }
        PaymentCommandPayload::RefundPayment(r) => {
            client
                .refund(
                    &r.reference,
                    r.amount_minor,
                    &r.currency,
                    &command.order_id,
                    &key,
                )
                .await?;
            Ok(Done::Accepted)
        }
        // Adyen has no API to read a payment back: the verified notification is the report.
        PaymentCommandPayload::SyncPayment(sync) => {
            let item: Option<NotificationItem> = sync
                .notification
                .as_deref()
                .and_then(|n| serde_json::from_str(n).ok());
            match item.as_ref().and_then(payment_from_notification) {
                Some(update) => Ok(Done::Report(update.payment)),
                None => Ok(Done::Accepted),
            }
        }
    }
}

/// Calls the provider the command names.
async fn call(
    endpoints: &ProviderEndpoints,
    command: &PaymentCommand,
) -> Result<Done, ProviderError> {
    let secret = match endpoints
        .secrets
        .resolve_for_tenant(&command.tenant_id, &command.secret_ref)
    {
        Ok(secret) => secret,
        Err(e) => return Ok(Done::Refused(format!("the tenant's payment secret: {e}"))),
    };
    match command.provider.as_str() {
        "stripe" => {
            let client =
                StripeClient::with_http(endpoints.http.clone(), &endpoints.stripe_url, &secret);
            stripe_call(&client, command).await
        }
        "adyen" => {
            let client = AdyenClient::with_http(
                endpoints.http.clone(),
                &endpoints.adyen_url,
                &secret,
                &command.account_ref,
            );
            adyen_call(&client, command).await
        }
        other => Ok(Done::Refused(format!("unknown payment provider {other:?}"))),
    }
}

/// The report of a command's outcome.
fn report(command: &PaymentCommand, done: Done, now: i64) -> Option<PaymentEvent> {
    let amount = match &command.payload {
        PaymentCommandPayload::CreatePayment(c) => c.amount_minor,
        PaymentCommandPayload::CapturePayment(c) => c.amount_minor,
        PaymentCommandPayload::RefundPayment(r) => r.amount_minor,
        _ => 0,
    };
    let reference = match &command.payload {
        PaymentCommandPayload::CapturePayment(c) => c.reference.clone(),
        PaymentCommandPayload::CancelPayment(c) => c.reference.clone(),
        PaymentCommandPayload::RefundPayment(r) => r.reference.clone(),
        PaymentCommandPayload::SyncPayment(s) => s.reference.clone().unwrap_or_default(),
        PaymentCommandPayload::CreatePayment(_) => String::new(),
    };
    let event_id = match &command.payload {
        PaymentCommandPayload::SyncPayment(s) => format!("sync:{}", s.provider_event_id),
        _ => command.command_id.clone(),
    };
    let base = PaymentEvent {
        event_id,
        tenant_id: command.tenant_id.clone(),
        order_id: command.order_id.clone(),
        attempt: command.attempt,
        occurred_at: now,
        provider: command.provider.clone(),
        reference,
        state: PaymentState::Error,
        amount_minor: amount,
        currency: String::new(),
        client_secret: None,
        redirect_url: None,
        payment_method_ref: None,
        reason: None,
        cause: command.command_id.clone(),
    };
    match done {
        Done::Accepted => None,
        Done::Refused(reason) => Some(PaymentEvent {
            reason: Some(reason),
            ..base
        }),
        Done::Report(payment) => Some(PaymentEvent {
            reference: payment.reference,
            state: state_of(payment.status),
            amount_minor: payment.amount_minor,
            currency: payment.currency,
            client_secret: payment.client_secret,
            redirect_url: payment.redirect_url,
            payment_method_ref: payment.payment_method_ref,
            reason: payment.refusal_reason,
            ..base
        }),
    }
}

/// The origin headers of a command (a waiting shopper) and its tenant, copied onto its report.
fn origin_headers(message: &OwnedMessage) -> OwnedHeaders {
    let mut headers = OwnedHeaders::new();
    for header in message.headers().into_iter().flat_map(|h| h.iter()) {
        if [ORIGIN_REPLY_TO_HEADER, ORIGIN_COMMAND_ID_HEADER, "tenant"].contains(&header.key) {
            headers = headers.insert(Header {
                key: header.key,
                value: header.value,
            });
        }
    }
    headers
}

struct Connector {
    endpoints: ProviderEndpoints,
    codec: Arc<Codec>,
    producer: FutureProducer,
    options: Options,
    dead_letters: DeadLetters,
}

enum Handled {
    Done,
    Stopped,
}

impl Connector {
    async fn handle(
        &self,
        message: &OwnedMessage,
        mut stop: Pin<&mut impl Future<Output = ()>>,
    ) -> Handled {
        let metrics = &self.options.metrics;
        let Some(bytes) = message.payload() else {
            return self
                .dead_letter(message, "a payment command without a value", stop)
                .await;
        };
        let command: PaymentCommand = loop {
            match self.codec.decode(bytes).await {
                Ok(command) => break command,
                Err(e) if e.is_retryable() => {
                    // The registry is away: wait as for an unavailable provider.
                    tracing::warn!(error = %e, "Schema registry unavailable; retrying.");
                    metrics.set_stalled(true);
                    let wait = tokio::time::sleep(Duration::from_secs(1));
                    if unless_stopped(stop.as_mut(), wait).await.is_none() {
                        return Handled::Stopped;
                    }
                }
                Err(e) => {
                    let error = format!("undecodable payment command: {e}");
                    return self.dead_letter(message, &error, stop).await;
                }
            }
        };
        let mut attempts = Attempts::new(self.options.retry);
        let done = loop {
            let Some(result) = unless_stopped(stop.as_mut(), call(&self.endpoints, &command)).await
            else {
                return Handled::Stopped;
            };
            match result {
                Ok(done) => {
                    // Crash tests stop here: the provider acted, nothing is recorded yet.
                    tcom_state::failpoint::hit("payments.after_provider_call");
                    break done;
                }
                Err(e) if e.is_transient() => {
                    ConnectorMetrics::add(&metrics.retries);
                    metrics.set_stalled(true);
                    // Unavailable is never dead-lettered: the command waits for the provider.
                    let Next::RetryAfter(wait) = attempts.after(Failure::Unavailable) else {
                        unreachable!("an unavailable dependency is always waited for")
                    };
                    tracing::warn!(order = %command.order_id, command = %command.command_id, error = %e, retry_in_ms = wait.as_millis() as u64, "Payment provider unavailable; retrying the same command.");
                    if unless_stopped(stop.as_mut(), tokio::time::sleep(wait))
                        .await
                        .is_none()
                    {
                        return Handled::Stopped;
                    }
                }
                Err(e) => {
                    tracing::error!(order = %command.order_id, command = %command.command_id, error = %e, "The payment provider refused a request; the order is told.");
                    ConnectorMetrics::add(&metrics.failures);
                    break Done::Refused(e.to_string());
                }
            }
        };
        metrics.set_stalled(false);
        let Some(event) = report(&command, done, now_ms()) else {
            ConnectorMetrics::add(&metrics.written);
            return Handled::Done;
        };
        let key = format!("{}:{}", command.tenant_id, command.order_id);
        loop {
            let bytes = match self.codec.encode(&event).await {
                Ok(bytes) => bytes,
                Err(e) => {
                    tracing::warn!(error = %e, "Encoding a payment event failed; retrying.");
                    if unless_stopped(stop.as_mut(), tokio::time::sleep(Duration::from_secs(1)))
                        .await
                        .is_none()
                    {
                        return Handled::Stopped;
                    }
                    continue;
                }
            };
            let record = FutureRecord::to(topics::PAYMENT_EVENTS)
                .key(&key)
                .payload(&bytes)
                .headers(origin_headers(message));
            let sent = unless_stopped(
                stop.as_mut(),
                self.producer.send(record, Duration::from_secs(10)),
            )
            .await;
            match sent {
                None => return Handled::Stopped,
                Some(Ok(_)) => break,
                Some(Err((e, _))) => {
                    ConnectorMetrics::add(&metrics.retries);
                    tracing::warn!(error = %e, "Producing a payment event failed; retrying.");
                }
            }
        }
        ConnectorMetrics::add(&metrics.written);
        Handled::Done
    }

    async fn dead_letter(
        &self,
        message: &OwnedMessage,
        error: &str,
        mut stop: Pin<&mut impl Future<Output = ()>>,
    ) -> Handled {
        tracing::error!(
            partition = message.partition(),
            offset = message.offset(),
            error,
            "A payment command can never be done; dead-lettering it."
        );
        let mut retry = 0;
        loop {
            match unless_stopped(stop.as_mut(), self.dead_letters.send(message, error)).await {
                None => return Handled::Stopped,
                Some(Ok(())) => break,
                Some(Err(e)) => {
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
        ConnectorMetrics::add(&self.options.metrics.dead_letters);
        Handled::Done
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Logs every assignment the group gives this connector: which commands it is now doing.
#[derive(Debug, Clone, Copy)]
struct AssignmentLog;

impl rdkafka::ClientContext for AssignmentLog {}

impl rdkafka::consumer::ConsumerContext for AssignmentLog {
    fn post_rebalance(
        &self,
        _: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &rdkafka::consumer::Rebalance<'_>,
    ) {
        if let rdkafka::consumer::Rebalance::Assign(partitions) = rebalance {
            tracing::info!(
                partitions = partitions.count(),
                "Payments connector assigned partitions."
            );
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
    endpoints: ProviderEndpoints,
    codec: Arc<Codec>,
    options: Options,
    shutdown: impl Future<Output = ()>,
) -> Result<(), PaymentsError> {
    tokio::pin!(shutdown);
    let mut specs = crate::dead_letter::topic_specs(&[topics::PAYMENT_COMMANDS]);
    specs.push(tcom_state::admin::TopicSpec::new(topics::PAYMENT_EVENTS, 6));
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
    let producer: FutureProducer = kafka.idempotent_producer().create()?;
    // A connector that died is noticed within seconds (librdkafka's default is 45 s), so
    // another instance takes its payments over quickly.
    let consumer: StreamConsumer<AssignmentLog> = kafka
        .read_committed_consumer(&group_id)
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1500")
        .create_with_context(AssignmentLog)?;
    consumer.subscribe(&[topics::PAYMENT_COMMANDS])?;
    let connector = Arc::new(Connector {
        endpoints,
        codec,
        producer,
        options,
        dead_letters,
    });
    // The stop signal, for every lane.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<(i32, i64)>();
    let mut lanes = Vec::with_capacity(LANES);
    let mut lane_tasks = tokio::task::JoinSet::new();
    for _ in 0..LANES {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<OwnedMessage>(LANE_QUEUE);
        lanes.push(tx);
        let (connector, done_tx, stop) = (connector.clone(), done_tx.clone(), stopped.clone());
        lane_tasks.spawn(async move {
            while let Some(message) = rx.recv().await {
                let stop = stop();
                tokio::pin!(stop);
                match connector.handle(&message, stop.as_mut()).await {
                    Handled::Done => {
                        let _ = done_tx.send((message.partition(), message.offset()));
                    }
                    Handled::Stopped => break,
                }
            }
        });
    }
    drop(done_tx);
    let mut offsets = InFlight::default();
    tracing::info!(group = %group_id, lanes = LANES, "Payments connector started.");
    let mut failure = None;
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(ended) = lane_tasks.join_next() => {
                let why = match ended {
                    Err(e) => format!("it panicked: {e}"),
                    Ok(()) => "it returned".to_owned(),
                };
                tracing::error!(why, "A payment lane ended; stopping the payments connector.");
                failure = Some(PaymentsError::LaneEnded(why));
                break;
            }
            Some((partition, offset)) = done_rx.recv() => {
                if let Some(next) = offsets.finished(partition, offset) {
                    let mut done = TopicPartitionList::new();
                    let added = done.add_partition_offset(
                        topics::PAYMENT_COMMANDS,
                        partition,
                        Offset::Offset(next),
                    );
                    // A failed commit is not fatal: the commands come again, and the
                    // providers' idempotency makes them harmless.
                    if let Err(e) = added.and_then(|()| consumer.commit(&done, CommitMode::Async)) {
                        tracing::warn!(error = %e, "Committing payment commands' offsets failed.");
                    }
                }
            }
            message = consumer.recv() => {
                let message = match message {
                    Ok(m) => m.detach(),
                    Err(e) => {
                        tracing::warn!(error = %e, "Kafka receive failed; retrying.");
                        let wait = tokio::time::sleep(Duration::from_millis(500));
                        if unless_stopped(shutdown.as_mut(), wait).await.is_none() {
                            break;
                        }
                        continue;
                    }
                };
                offsets.started(message.partition(), message.offset());
                let lane = lane_of(message.key().unwrap_or_default());
                // A full lane holds the loop up: back pressure instead of an unbounded queue.
                match unless_stopped(shutdown.as_mut(), lanes[lane].send(message)).await {
                    None => break,
                    Some(Ok(())) => {}
                    Some(Err(_)) => {
                        failure = Some(PaymentsError::LaneEnded("its queue closed".to_owned()));
                        break;
                    }
                }
            }
        }
    }
    let _ = stop_tx.send(true);
    drop(lanes);
    while lane_tasks.join_next().await.is_some() {}
    tracing::info!("Payments connector stopped.");
    failure.map_or(Ok(()), Err)
}

/// How many payment commands are done at once. One order's commands keep their order (they
/// share a key, so a lane); different orders' provider calls overlap, which is what a
/// provider's latency (hundreds of milliseconds at Stripe or Adyen) needs.
pub const LANES: usize = 16;
/// Commands queued per lane before the consumer waits.
const LANE_QUEUE: usize = 32;

/// The lane of a record key: the same key, the same lane.
fn lane_of(key: &[u8]) -> usize {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    (hasher.finish() % LANES as u64) as usize
}

/// Offsets being worked on, per partition: the offset to commit is the lowest still in
/// flight (everything below it is done), or one past the highest seen when none is.
#[derive(Debug, Default)]
struct InFlight {
    partitions: std::collections::HashMap<i32, Partition>,
}

#[derive(Debug, Default)]
struct Partition {
    working: std::collections::BTreeSet<i64>,
    highest: i64,
    committed: i64,
}

impl InFlight {
    fn started(&mut self, partition: i32, offset: i64) {
        let p = self.partitions.entry(partition).or_default();
        p.working.insert(offset);
        p.highest = p.highest.max(offset);
    }

    /// Marks `offset` done; the offset to commit when it moved on.
    fn finished(&mut self, partition: i32, offset: i64) -> Option<i64> {
        let p = self.partitions.get_mut(&partition)?;
        p.working.remove(&offset);
        let next = p.working.first().copied().unwrap_or(p.highest + 1);
        (next > p.committed).then(|| {
            p.committed = next;
            next
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_done_prefix_is_committed() {
        let mut offsets = InFlight::default();
        for offset in 10..13 {
            offsets.started(0, offset);
        }
        offsets.started(1, 7);
        // 11 finishes first: 10 is still in flight, nothing may be committed past it.
        assert_eq!(offsets.finished(0, 11), Some(10));
        assert_eq!(offsets.finished(0, 10), Some(12));
        assert_eq!(offsets.finished(0, 12), Some(13));
        assert_eq!(offsets.finished(1, 7), Some(8));
        // A duplicate completion commits nothing new.
        assert_eq!(offsets.finished(0, 12), None);
        assert_eq!(offsets.finished(5, 1), None, "a partition never started");
    }

    #[test]
    fn one_orders_commands_share_a_lane() {
        assert_eq!(lane_of(b"t:o1"), lane_of(b"t:o1"));
        let lanes: std::collections::HashSet<usize> = (0..200)
            .map(|i| lane_of(format!("t:o{i}").as_bytes()))
            .collect();
        assert!(
            lanes.len() > LANES / 2,
            "keys spread over the lanes: {lanes:?}"
        );
    }
}
