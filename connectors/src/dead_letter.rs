//! What every connector does when a record cannot be written: one policy, used by every
//! connector loop, so a new connector cannot get it wrong.
//!
//! A failure is one of three kinds ([`Failure`]):
//!
//! - **Unavailable**: nothing can be written right now, whatever the record: the database is
//!   unreachable (connection refused or reset, pool timeout, the server starting up or
//!   shutting down, out of connections or disk), refuses the login, or lacks the schema or
//!   grants the connector needs (a deployment problem, not the record's); the schema registry
//!   is unreachable. The connector retries **the same record** with capped exponential backoff
//!   for as long as it takes and never dead-letters it: during an outage every record fails,
//!   and dead-lettering them would empty the views for no fault of the data. The `stalled`
//!   gauge reads 1 while it waits, and every retry is counted.
//! - **Transient**: this record failed for a reason that usually passes (serialization
//!   failure, deadlock, lock or statement timeout, an unclassified database error). Retried
//!   with the same backoff, at most [`RetryPolicy::max_attempts`] attempts in all; a record
//!   the database keeps refusing is then dead-lettered.
//! - **Permanent**: this record can never be written: SQLSTATE class 22 (data exception, e.g.
//!   `22021` a NUL byte in a text, `22P05` in a JSON document), 23 (integrity), 42 (syntax and
//!   access rules, except the codes of a missing schema or grant), 54 (value too large), an
//!   undecodable record. Dead-lettered at once.
//!
//! Dead-lettering sends the record as it was read (key, value, headers) to `<topic>.dlq` (the
//! runtime's naming, [`tcom_state::runtime::dead_letter_topic`]) with the runtime's headers:
//! `dlq.error`, `dlq.topic`, `dlq.partition`, `dlq.offset` and `dlq.application` (the
//! consumer group). Only once Kafka has acknowledged it is the record's offset committed, and
//! the connector goes on with the next record: one tenant's bad record never holds up the
//! others.
//!
//! Every wait and every call that may block (database, Kafka) races the connector's stop
//! signal ([`unless_stopped`]), so a shutdown never waits behind a retry.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::Message;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tcom_schemas::topics;
use tcom_state::admin::TopicSpec;
use tcom_state::client::KafkaSettings;
use tcom_state::runtime::dead_letter_topic;

/// Header names of a dead letter, the same as the runtime's.
pub const HEADER_ERROR: &str = "dlq.error";
pub const HEADER_TOPIC: &str = "dlq.topic";
pub const HEADER_PARTITION: &str = "dlq.partition";
pub const HEADER_OFFSET: &str = "dlq.offset";
pub const HEADER_APPLICATION: &str = "dlq.application";

/// How a failure is handled; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Nothing can be written now: wait, for as long as it takes.
    Unavailable,
    /// This record failed, perhaps for a passing reason: retry a bounded number of times.
    Transient,
    /// This record can never be written: dead-letter it.
    Permanent,
}

/// The kind of a database error.
pub fn classify_sqlx(error: &sqlx::Error) -> Failure {
    use sqlx::Error as E;
    match error {
        E::Database(e) => e
            .code()
            .map_or(Failure::Transient, |code| classify_sqlstate(&code)),
        E::Io(_) | E::Tls(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed => {
            Failure::Unavailable
        }
        E::Configuration(_) | E::Migrate(_) => Failure::Unavailable,
        E::Encode(_)
        | E::Decode(_)
        | E::ColumnDecode { .. }
        | E::TypeNotFound { .. }
        | E::ColumnNotFound(_)
        | E::ColumnIndexOutOfBounds { .. }
        | E::RowNotFound
        | E::InvalidArgument(_) => Failure::Permanent,
        _ => Failure::Transient,
    }
}

/// The kind of a PostgreSQL error by its SQLSTATE.
pub fn classify_sqlstate(code: &str) -> Failure {
    // A missing table, column, function, schema or grant: every record fails the same way
    // until the deployment is fixed (the connector's statements never change).
    const SCHEMA_MISSING: &[&str] = &["42P01", "42703", "42883", "42501", "3F000"];
    if SCHEMA_MISSING.contains(&code) {
        return Failure::Unavailable;
    }
    match code.get(..2).unwrap_or_default() {
        // Connection exception, invalid authorization, invalid catalog (no such database),
        // insufficient resources, system error.
        "08" | "28" | "3D" | "53" | "58" => Failure::Unavailable,
        // admin_shutdown, crash_shutdown, cannot_connect_now, database_dropped.
        "57" if code != "57014" => Failure::Unavailable,
        // Cardinality violation, data exception, integrity constraint, syntax or access rule,
        // program limit (value too large), a trigger's raise.
        "21" | "22" | "23" | "42" | "54" | "P0" => Failure::Permanent,
        // Serialization failure and deadlock (40), lock not available (55), statement
        // timeout (57014), internal errors and anything not classified.
        _ => Failure::Transient,
    }
}

/// An error with its SQLSTATE, for logs and the `dlq.error` header.
pub fn describe_sqlx(error: &sqlx::Error) -> String {
    match error.as_database_error().and_then(|e| e.code()) {
        Some(code) => format!("{error} (SQLSTATE {code})"),
        None => error.to_string(),
    }
}

/// Backoff and the bound on attempts of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first wait; each further wait doubles, up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Attempts of a record failing with a [`Failure::Transient`] error before it is
    /// dead-lettered (1: no retry). [`Failure::Unavailable`] failures do not count.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    /// 100 ms doubling to 5 s; 10 attempts (about 20 s of retries).
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            max_attempts: 10,
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0 for the first).
    pub fn backoff(&self, retry: u32) -> Duration {
        self.initial_backoff
            .saturating_mul(2u32.saturating_pow(retry.min(31)))
            .min(self.max_backoff)
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    RetryAfter(Duration),
    DeadLetter,
}

/// The attempts at one record (or one unit of work).
#[derive(Debug, Clone)]
pub struct Attempts {
    policy: RetryPolicy,
    retries: u32,
    transient_failures: u32,
}

impl Attempts {
    pub fn new(policy: RetryPolicy) -> Self {
        Self {
            policy,
            retries: 0,
            transient_failures: 0,
        }
    }

    /// Records a failure and says what comes next.
    pub fn after(&mut self, failure: Failure) -> Next {
        match failure {
            Failure::Permanent => return Next::DeadLetter,
            Failure::Transient => {
                self.transient_failures += 1;
                if self.transient_failures >= self.policy.max_attempts {
                    return Next::DeadLetter;
                }
            }
            Failure::Unavailable => {}
        }
        let wait = self.policy.backoff(self.retries);
        self.retries = self.retries.saturating_add(1);
        Next::RetryAfter(wait)
    }
}

/// How a connector retries, and where it counts.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub retry: RetryPolicy,
    pub metrics: std::sync::Arc<ConnectorMetrics>,
}

/// Counters of one connector, rendered for Prometheus like the runtime's.
#[derive(Debug, Default)]
pub struct ConnectorMetrics {
    /// Records (or syncs) written.
    pub written: AtomicU64,
    /// Retries after a failure, of every kind.
    pub retries: AtomicU64,
    /// Records sent to a dead-letter topic.
    pub dead_letters: AtomicU64,
    /// Permanent failures of work that has no record to dead-letter (a content sync), left
    /// to the next scheduled attempt.
    pub failures: AtomicU64,
    /// 1 while the connector waits for the database (or registry) to come back.
    pub stalled: AtomicI64,
    /// The circuit breaker in front of an outside system, for connectors that have one
    /// (0 closed, 1 open, 2 half-open); 0 for the others.
    pub breaker_state: AtomicI64,
}

impl ConnectorMetrics {
    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_stalled(&self, stalled: bool) {
        self.stalled.store(i64::from(stalled), Ordering::Relaxed);
    }

    /// The metrics in the Prometheus text format, labelled with the connector's name.
    pub fn render_prometheus(&self, connector: &str) -> String {
        let count = |c: &AtomicU64| c.load(Ordering::Relaxed).to_string();
        let series = [
            (
                "tcom_connector_written_total",
                "counter",
                "Records or syncs written",
                count(&self.written),
            ),
            (
                "tcom_connector_retries_total",
                "counter",
                "Retries after a failed write",
                count(&self.retries),
            ),
            (
                "tcom_connector_dead_letters_total",
                "counter",
                "Records sent to a dead-letter topic",
                count(&self.dead_letters),
            ),
            (
                "tcom_connector_failures_total",
                "counter",
                "Permanent failures without a record to dead-letter",
                count(&self.failures),
            ),
            (
                "tcom_connector_stalled",
                "gauge",
                "1 while waiting for the database or registry to come back",
                self.stalled.load(Ordering::Relaxed).to_string(),
            ),
            (
                "tcom_connector_breaker_state",
                "gauge",
                "Circuit breaker in front of the outside system: 0 closed, 1 open, 2 half-open",
                self.breaker_state.load(Ordering::Relaxed).to_string(),
            ),
        ];
        let mut out = String::new();
        for (name, kind, help, value) in series {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{connector=\"{connector}\"}} {value}\n"
            ));
        }
        out
    }
}

/// `work`, unless `stop` resolves first (then `None`). Never poll `stop` again after `None`.
pub async fn unless_stopped<T>(
    stop: Pin<&mut impl Future<Output = ()>>,
    work: impl Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        biased;
        () = stop => None,
        value = work => Some(value),
    }
}

/// The dead-letter topics of `inputs`, with their inputs' declared partition counts.
pub fn topic_specs(inputs: &[&str]) -> Vec<TopicSpec> {
    inputs
        .iter()
        .map(|input| {
            let partitions = topics::ALL
                .iter()
                .find(|t| t.name == *input)
                .map_or(1, |t| t.partitions);
            TopicSpec::new(dead_letter_topic(input), partitions)
        })
        .collect()
}

/// Sends dead letters of one consumer group.
pub struct DeadLetters {
    producer: FutureProducer,
    application: String,
}

impl std::fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetters")
            .field("application", &self.application)
            .finish_non_exhaustive()
    }
}

impl DeadLetters {
    /// A sender for the consumer group `application`.
    ///
    /// # Errors
    /// The producer cannot be created.
    pub fn new(kafka: &KafkaSettings, application: &str) -> Result<Self, KafkaError> {
        let producer = kafka
            .idempotent_producer()
            // A delivery that is not acknowledged in this time fails and is retried by the
            // caller, which keeps watching its stop signal meanwhile.
            .set("message.timeout.ms", "30000")
            .create()?;
        Ok(Self {
            producer,
            application: application.to_owned(),
        })
    }

    /// Sends `message` to its topic's dead-letter topic with `error` and its origin in
    /// headers, and waits for the acknowledgement.
    ///
    /// # Errors
    /// Kafka did not take it.
    pub async fn send<M: Message>(&self, message: &M, error: &str) -> Result<(), KafkaError> {
        let mut headers = OwnedHeaders::new();
        if let Some(original) = message.headers() {
            for header in original.iter() {
                headers = headers.insert(header);
            }
        }
        let partition = message.partition().to_string();
        let offset = message.offset().to_string();
        for (key, value) in [
            (HEADER_ERROR, error),
            (HEADER_TOPIC, message.topic()),
            (HEADER_PARTITION, partition.as_str()),
            (HEADER_OFFSET, offset.as_str()),
            (HEADER_APPLICATION, self.application.as_str()),
        ] {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        let topic = dead_letter_topic(message.topic());
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&topic).headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(value) = message.payload() {
            record = record.payload(value);
        }
        self.producer
            .send(record, Duration::from_secs(30))
            .await
            .map(|_| ())
            .map_err(|(e, _)| e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_and_integrity_errors_are_permanent() {
        for code in [
            "22021", "22P05", "22001", "23505", "23503", "42601", "54000",
        ] {
            assert_eq!(classify_sqlstate(code), Failure::Permanent, "{code}");
        }
    }

    #[test]
    fn an_unreachable_or_unprepared_database_is_waited_for() {
        for code in [
            "08006", "08001", "57P01", "57P03", "53300", "28P01", "3D000", "42P01", "42501",
        ] {
            assert_eq!(classify_sqlstate(code), Failure::Unavailable, "{code}");
        }
        for error in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
            sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        ] {
            assert_eq!(classify_sqlx(&error), Failure::Unavailable, "{error}");
        }
    }

    #[test]
    fn passing_conflicts_are_transient_and_bad_values_permanent() {
        for code in ["40001", "40P01", "55P03", "57014", "XX000"] {
            assert_eq!(classify_sqlstate(code), Failure::Transient, "{code}");
        }
        let not_json = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
        assert_eq!(
            classify_sqlx(&sqlx::Error::Decode(Box::new(not_json))),
            Failure::Permanent
        );
        assert_eq!(
            classify_sqlx(&sqlx::Error::Protocol("odd".into())),
            Failure::Transient
        );
    }

    #[test]
    fn backoff_doubles_from_the_first_wait_and_stays_under_its_bound() {
        let policy = RetryPolicy::default();
        let waits: Vec<u64> = (0..8)
            .map(|n| policy.backoff(n).as_millis() as u64)
            .collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(policy.backoff(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn transient_failures_dead_letter_after_the_bound_unavailability_never() {
        let policy = RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        };
        let mut attempts = Attempts::new(policy);
        assert_eq!(
            attempts.after(Failure::Transient),
            Next::RetryAfter(Duration::from_millis(100))
        );
        // An outage in between neither counts as an attempt nor resets the backoff.
        assert_eq!(
            attempts.after(Failure::Unavailable),
            Next::RetryAfter(Duration::from_millis(200))
        );
        assert_eq!(
            attempts.after(Failure::Transient),
            Next::RetryAfter(Duration::from_millis(400))
        );
        assert_eq!(attempts.after(Failure::Transient), Next::DeadLetter);

        let mut outage = Attempts::new(policy);
        for _ in 0..1000 {
            assert!(matches!(
                outage.after(Failure::Unavailable),
                Next::RetryAfter(wait) if wait <= policy.max_backoff
            ));
        }
        assert_eq!(
            Attempts::new(policy).after(Failure::Permanent),
            Next::DeadLetter
        );
    }

    #[test]
    fn dead_letter_topics_follow_the_runtime_naming() {
        let specs = topic_specs(&[topics::CATALOG_OFFERINGS]);
        assert_eq!(specs[0].name, "catalog.offerings.dlq");
        assert_eq!(specs[0].partitions, 6);
    }

    #[test]
    fn metrics_render_every_series() {
        let metrics = ConnectorMetrics::default();
        ConnectorMetrics::add(&metrics.dead_letters);
        metrics.set_stalled(true);
        let text = metrics.render_prometheus("views");
        assert!(
            text.contains("tcom_connector_dead_letters_total{connector=\"views\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE tcom_connector_stalled gauge\ntcom_connector_stalled{connector=\"views\"} 1\n"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_stop_interrupts_a_wait() {
        let stop = std::future::ready(());
        tokio::pin!(stop);
        let started = std::time::Instant::now();
        let waited =
            unless_stopped(stop.as_mut(), tokio::time::sleep(Duration::from_secs(30))).await;
        assert_eq!(waited, None);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
