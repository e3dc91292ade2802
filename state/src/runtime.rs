//! The exactly-once processing loop.
//!
//! One consumer (read_committed, in the application's consumer group) and one transactional
//! producer per runtime instance, on a dedicated thread, because every rdkafka transaction call
//! blocks. A *task* per input partition number owns the processor instance and the RocksDB
//! state of that partition (co-partitioned input topics share a task).
//!
//! A transaction covers everything since the last commit: the processors' outputs, dead
//! letters, the changelog records of every key written, and the consumed offsets
//! (`send_offsets_to_transaction` with the group metadata, which fences zombies after a
//! rebalance). Order at commit:
//!
//! 1. produce the changelog records of the transaction's writes;
//! 2. send the input offsets to the transaction; commit it;
//! 3. only then apply the writes to RocksDB, with the changelog offset they reflect, in one
//!    atomic batch.
//!
//! A crash before step 2 completes loses nothing: the transaction aborts and RocksDB never saw
//! its writes. A crash after it loses at most the batch of step 3, which the changelog replay
//! at the next start restores. No state is ever wiped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, Consumer, ConsumerContext, ConsumerGroupMetadata, Rebalance,
};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, Statistics, TopicPartitionList};

use crate::admin::{TopicSpec, ensure_topics};
use crate::client::KafkaSettings;
use crate::error::{Error, Result};
use crate::failpoint;
use crate::global::{self, GlobalTableSpec, GlobalTables};
use crate::metrics::Metrics;
use crate::processor::{Context, Output, ProcessError, ProcessorFactory, Record};
use crate::reply::{
    COMMAND_FINGERPRINT_HEADER, REPLY_TO_HEADER, Reply, ReplyBody, ReplySink, fingerprint_key,
    split_seen,
};
use crate::restore::{Restorer, Target};
use crate::store::{TaskDb, Writes};

/// Header carrying a command's unique id; records with one are processed at most once.
pub const COMMAND_ID_HEADER: &str = "command-id";
/// The internal store remembering processed command ids.
pub const COMMAND_IDS_STORE: &str = "command-ids";

/// How retryable failures are retried.
///
/// A record that fails with a retryable error (the schema registry briefly down, say) is first
/// retried in place `attempts` times, `initial_backoff` doubling. If it still fails, the loop
/// *pauses*: it commits what it processed before that record (leaving the record's own offset
/// uncommitted), waits (backoff doubling up to `max_pause`) and consumes again from the
/// committed offsets, so the record is tried again first. Only when the same record has kept failing for `give_up_after` is it dead-lettered
/// as if it were permanent. Permanent errors dead-letter at once.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub initial_backoff: Duration,
    pub max_pause: Duration,
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 3,
            initial_backoff: Duration::from_millis(50),
            max_pause: Duration::from_secs(5),
            give_up_after: Duration::from_secs(300),
        }
    }
}

/// How long transient Kafka errors (no leader yet, coordinator moving) are retried while
/// opening tasks, restoring or committing before the runtime gives up and fails.
const TRANSIENT_RETRY_FOR: Duration = Duration::from_secs(60);

/// Runs `op` until it succeeds, fails with a non-transient error, or transient failures have
/// lasted [`TRANSIENT_RETRY_FOR`]; backoff doubles from 50 ms to 2 s.
fn retry_transient<T>(
    what: &str,
    metrics: &Metrics,
    mut op: impl FnMut() -> Result<T>,
) -> Result<T> {
    let started = Instant::now();
    let mut backoff = Duration::from_millis(50);
    loop {
        match op() {
            Err(e) if e.is_transient() && started.elapsed() < TRANSIENT_RETRY_FOR => {
                Metrics::add(&metrics.transient_retries, 1);
                tracing::warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "{what} failed transiently; retrying.");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            other => return other,
        }
    }
}

/// The input record that failed with a retryable error and made the loop pause.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RetryingRecord {
    topic: String,
    partition: i32,
    offset: i64,
}

/// Everything a runtime instance needs to know.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Names the consumer group, the changelog topics and the state folder.
    pub application_id: String,
    /// Stable per instance across restarts: it makes the `transactional.id`, which fences a
    /// previous incarnation of this instance.
    pub instance_id: String,
    pub kafka: KafkaSettings,
    /// Co-partitioned input topics (same partition count).
    pub input_topics: Vec<String>,
    /// Store names; each gets a column family and a `<application>-<store>-changelog` topic.
    pub stores: Vec<String>,
    pub state_dir: PathBuf,
    /// Commit at least this often while records flow (interactive latency).
    pub commit_interval: Duration,
    /// ... or after this many records, whichever comes first.
    pub commit_max_records: usize,
    /// Also commit as soon as no input record is waiting: a lone command is answered after
    /// one commit instead of waiting out `commit_interval`, while under load the records that
    /// arrive during a commit form the next, larger transaction (adaptive batching). For
    /// processors that answer interactive requests.
    pub commit_when_idle: bool,
    pub punctuate_interval: Option<Duration>,
    pub retry: RetryPolicy,
    pub global_tables: Vec<GlobalTableSpec>,
    /// Skip records whose `command-id` header was already processed.
    pub deduplicate_commands: bool,
    /// Where replies to commands go after their transaction commits; `None`: nowhere.
    pub reply_sink: Option<Arc<dyn ReplySink>>,
    /// Memtable size per store in RocksDB (the crash tests make it small to flush often).
    pub state_write_buffer_bytes: usize,
    /// Memtable size of the family that keeps the changelog offsets.
    pub state_offsets_write_buffer_bytes: usize,
}

impl RuntimeConfig {
    /// A configuration with the defaults: commit every 100 ms or 1000 records, 3 attempts
    /// for retryable failures, command de-duplication on.
    pub fn new(
        application_id: impl Into<String>,
        instance_id: impl Into<String>,
        kafka: KafkaSettings,
        input_topics: Vec<String>,
        stores: Vec<String>,
        state_dir: PathBuf,
    ) -> Self {
        Self {
            application_id: application_id.into(),
            instance_id: instance_id.into(),
            kafka,
            input_topics,
            stores,
            state_dir,
            commit_interval: Duration::from_millis(100),
            commit_max_records: 1000,
            commit_when_idle: false,
            punctuate_interval: None,
            retry: RetryPolicy::default(),
            global_tables: Vec::new(),
            deduplicate_commands: true,
            reply_sink: None,
            state_write_buffer_bytes: crate::store::DEFAULT_WRITE_BUFFER_BYTES,
            state_offsets_write_buffer_bytes: crate::store::DEFAULT_WRITE_BUFFER_BYTES,
        }
    }

    /// The changelog topic of a store.
    pub fn changelog_topic(&self, store: &str) -> String {
        format!("{}-{store}-changelog", self.application_id)
    }

    /// Every store including the runtime's own.
    fn all_stores(&self) -> Vec<String> {
        let mut stores = self.stores.clone();
        if self.deduplicate_commands {
            stores.push(COMMAND_IDS_STORE.to_owned());
        }
        stores
    }
}

/// The dead-letter topic of an input topic.
pub fn dead_letter_topic(topic: &str) -> String {
    format!("{topic}.dlq")
}

/// A running runtime instance.
#[derive(Debug)]
pub struct RuntimeHandle {
    application_id: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<()>>>,
    metrics: Arc<Metrics>,
}

impl RuntimeHandle {
    /// The application this instance runs.
    pub fn application_id(&self) -> &str {
        &self.application_id
    }

    /// The instance's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Asks the loop to commit, close its tasks and stop.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// Whether the loop has ended (stopped, or failed).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Whether this instance does its work: the loop runs and turns, its partitions are
    /// assigned and restored, and it is not paused on a retryable error.
    ///
    /// # Errors
    /// Why not, for a readiness report.
    pub fn readiness(&self) -> std::result::Result<(), String> {
        if self.is_finished() {
            return Err("the runtime has stopped".to_owned());
        }
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        self.metrics.readiness(now, Duration::from_secs(15))
    }

    /// Stops (if not yet) and waits for the loop to end.
    ///
    /// # Errors
    /// The loop ended with a fatal error.
    pub fn join(mut self) -> Result<()> {
        self.stop();
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|_| Err(Error::Store("the runtime thread panicked".to_owned()))),
            None => Ok(()),
        }
    }
}

impl Drop for RuntimeHandle {
    fn drop(&mut self) {
        self.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Creates the changelog and dead-letter topics, then starts the loop on its own thread once
/// the producer is initialised, the global tables have caught up and the consumer subscribed.
///
/// # Errors
/// Topics cannot be created or read, or the producer cannot initialise transactions.
pub async fn start(config: RuntimeConfig, factory: ProcessorFactory) -> Result<RuntimeHandle> {
    let application_id = config.application_id.clone();
    let partitions = input_partitions(&config).await?;
    let mut specs: Vec<TopicSpec> = config
        .all_stores()
        .iter()
        .map(|s| TopicSpec::compacted(config.changelog_topic(s), partitions))
        .collect();
    specs.extend(
        config
            .input_topics
            .iter()
            .map(|t| TopicSpec::new(dead_letter_topic(t), partitions)),
    );
    ensure_topics(&config.kafka, &specs).await?;

    let metrics = Arc::new(Metrics::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let thread_metrics = metrics.clone();
    let thread_stop = stop.clone();
    let thread = std::thread::Builder::new()
        .name(format!("runtime-{}", config.application_id))
        .spawn(move || {
            let setup = Loop::new(config, factory, thread_metrics);
            match setup {
                Ok(mut looped) => {
                    let _ = ready_tx.send(Ok(()));
                    looped.run(&thread_stop)
                }
                Err(e) => {
                    let message = e.to_string();
                    let _ = ready_tx.send(Err(e));
                    Err(Error::Store(message))
                }
            }
        })
        .map_err(|e| Error::Store(format!("cannot start the runtime thread: {e}")))?;
    ready_rx
        .await
        .map_err(|_| Error::Store("the runtime thread ended during start-up".to_owned()))??;
    Ok(RuntimeHandle {
        application_id,
        stop,
        thread: Some(thread),
        metrics,
    })
}

async fn input_partitions(config: &RuntimeConfig) -> Result<i32> {
    let kafka = config.kafka.clone();
    let topics = config.input_topics.clone();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = kafka.client_config().create()?;
        let mut counts = HashSet::new();
        for topic in &topics {
            let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
            let count = metadata
                .topics()
                .first()
                .map_or(0, |t| t.partitions().len() as i32);
            if count == 0 {
                return Err(Error::Topic {
                    topic: topic.clone(),
                    message: "input topic does not exist".to_owned(),
                });
            }
            counts.insert(count);
        }
        match counts.len() {
            1 => Ok(counts.into_iter().next().expect("one count")),
            0 => Err(Error::Store("no input topic configured".to_owned())),
            _ => Err(Error::Store(format!(
                "input topics {topics:?} are not co-partitioned (partition counts {counts:?})"
            ))),
        }
    })
    .await?
}

// --- producer context: changelog offsets from delivery reports ---------------------------

/// Tracks, per changelog partition, the highest offset acknowledged in the open transaction,
/// and the first delivery failure.
#[derive(Default)]
struct TxnProducerContext {
    changelog_offsets: Mutex<HashMap<(String, i32), i64>>,
    failure: Mutex<Option<String>>,
}

impl ClientContext for TxnProducerContext {}

impl ProducerContext for TxnProducerContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(message) if message.topic().ends_with("-changelog") => {
                let mut offsets = self.changelog_offsets.lock().expect("offsets lock");
                let entry = offsets
                    .entry((message.topic().to_owned(), message.partition()))
                    .or_insert(-1);
                *entry = (*entry).max(message.offset());
            }
            Ok(_) => {}
            Err((e, message)) => {
                let mut failure = self.failure.lock().expect("failure lock");
                failure
                    .get_or_insert_with(|| format!("delivery to {} failed: {e}", message.topic()));
            }
        }
    }
}

/// Waits until every produced record is acknowledged, serving delivery reports as they come.
///
/// rdkafka's own flush (called by `commit_transaction`) polls in 100 ms slices and so adds up
/// to 100 ms to every commit; draining first leaves it nothing to wait for. The wait between
/// looks is a sleep, not `poll` with a timeout: a `poll` whose remaining time rounds down to
/// 0 ms returns at once, which turned short waits into a busy loop (a third of the process'
/// CPU under load, measured with `perf`).
pub fn drain<C: ProducerContext>(producer: &BaseProducer<C>, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        producer.poll(Duration::ZERO);
        if producer.in_flight_count() == 0 || Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(Duration::from_micros(250));
    }
}

// --- tasks and the engine -----------------------------------------------------------------

struct Task {
    processor: Box<dyn crate::processor::Processor>,
    db: TaskDb,
    /// Writes of the open transaction, not yet in RocksDB.
    pending: Writes,
    /// Next offset to consume per input topic, for the open transaction.
    consumed: HashMap<String, i64>,
}

/// What the loop and the rebalance callbacks share (both run on the loop's thread; the
/// mutex only satisfies the callback's `Sync` bound).
struct Engine {
    config: RuntimeConfig,
    factory: ProcessorFactory,
    store_ids: HashMap<String, usize>,
    stores: Vec<String>,
    producer: BaseProducer<TxnProducerContext>,
    restorer: Restorer,
    tasks: BTreeMap<i32, Task>,
    globals: Arc<GlobalTables>,
    metrics: Arc<Metrics>,
    txn_open: bool,
    txn_records: usize,
    txn_started: Instant,
    last_punctuation: Instant,
    /// A rebalance callback failed in a way the loop must act on.
    fatal: Option<Error>,
    /// After an abort, consumer positions must go back to the committed offsets.
    rewind: bool,
    scratch_writes: Writes,
    scratch_outputs: Vec<Output>,
    /// Replies of the open transaction, published once it commits.
    txn_replies: Vec<Reply>,
    /// Answers to earlier commands made by the record being processed.
    scratch_origin_replies: Vec<(String, Vec<u8>, Vec<u8>)>,
    /// The command-id store's index, looked up once rather than per record.
    dedup_store: Option<usize>,
    /// Set by `handle` when a record still fails with a retryable error after its in-place
    /// attempts: the loop aborts, waits and consumes again.
    pause_requested: Option<String>,
    /// The record the pauses are for, and since when it fails.
    retrying: Option<(RetryingRecord, Instant)>,
    pause_backoff: Duration,
}

const TXN_TIMEOUT: Duration = Duration::from_secs(30);

impl Engine {
    fn begin_if_needed(&mut self) -> Result<()> {
        if !self.txn_open {
            self.producer.begin_transaction()?;
            self.txn_open = true;
            self.txn_records = 0;
            self.txn_started = Instant::now();
        }
        Ok(())
    }

    fn send(&self, output: &Output) -> Result<()> {
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&output.topic);
        // librdkafka allocates a header list per record: only build one when there are headers.
        if !output.headers.is_empty() {
            let mut headers = OwnedHeaders::new_with_capacity(output.headers.len());
            for (name, value) in &output.headers {
                headers = headers.insert(Header {
                    key: name,
                    value: Some(value.as_slice()),
                });
            }
            record = record.headers(headers);
        }
        if let Some(key) = &output.key {
            record = record.key(key.as_slice());
        }
        if let Some(value) = &output.value {
            record = record.payload(value.as_slice());
        }
        if let Some(partition) = output.partition {
            record = record.partition(partition);
        }
        self.send_record(record)
    }

    fn send_record<'a>(&self, mut record: BaseRecord<'a, [u8], [u8]>) -> Result<()> {
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    self.producer.poll(Duration::from_millis(50));
                    record = back;
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }

    /// Processes one input record inside the open transaction.
    fn handle(&mut self, message: &BorrowedMessage<'_>) -> Result<()> {
        self.begin_if_needed()?;
        let partition = message.partition();
        let headers: Vec<(String, Vec<u8>)> = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let record = Record {
            topic: message.topic(),
            partition,
            offset: message.offset(),
            timestamp_ms: message.timestamp().to_millis().unwrap_or_default(),
            key: message.key(),
            value: message.payload(),
            headers: &headers,
        };
        let Some(task) = self.tasks.get_mut(&partition) else {
            // Cannot happen while assignments and tasks are kept in step; never drop silently.
            return Err(Error::Store(format!("no task for partition {partition}")));
        };
        Metrics::add(&self.metrics.records, 1);
        self.txn_records += 1;
        task.consumed
            .insert(record.topic.to_owned(), record.offset + 1);

        let dedup_store = self.dedup_store;
        let command_id = record.header(COMMAND_ID_HEADER).map(<[u8]>::to_vec);
        let reply_to = record
            .header(REPLY_TO_HEADER)
            .map(|r| String::from_utf8_lossy(r).into_owned());
        let fingerprint = record
            .header(COMMAND_FINGERPRINT_HEADER)
            .map(<[u8]>::to_vec);
        if let (Some(store), Some(id)) = (dedup_store, &command_id) {
            let committed_or_pending = |key: &[u8]| -> Result<Option<Vec<u8>>> {
                match task.pending.lookup(store, key) {
                    Some(value) => Ok(value.map(<[u8]>::to_vec)),
                    None => task.db.get(store, key),
                }
            };
            if let Some(seen) = committed_or_pending(id)? {
                Metrics::add(&self.metrics.duplicates, 1);
                let first_fingerprint = committed_or_pending(&fingerprint_key(id))?;
                let reused = matches!((&fingerprint, &first_fingerprint), (Some(now), Some(first)) if now != first);
                // Answer a re-delivered command with its first decision; a different request
                // under the same id gets neither that decision nor a new one.
                let body = if reused {
                    Some(ReplyBody::KeyReused)
                } else {
                    split_seen(&seen).map(|body| ReplyBody::Processed(body.to_vec()))
                };
                if let (Some(reply_to), Some(body)) = (reply_to, body) {
                    self.txn_replies.push(Reply {
                        reply_to,
                        command_id: String::from_utf8_lossy(id).into_owned(),
                        body,
                    });
                }
                return Ok(());
            }
        }

        // Buffers reused across records: no allocation per record for the bookkeeping.
        let writes = &mut self.scratch_writes;
        let outputs = &mut self.scratch_outputs;
        let mut attempt = 0;
        let mut reply: Option<Vec<u8>>;
        let origin_replies = &mut self.scratch_origin_replies;
        let outcome = loop {
            writes.clear();
            outputs.clear();
            origin_replies.clear();
            reply = None;
            let mut ctx = Context {
                partition,
                store_ids: &self.store_ids,
                db: &task.db,
                pending: &task.pending,
                writes,
                outputs,
                globals: &self.globals,
                reply: &mut reply,
                origin_replies,
            };
            match task.processor.process(&mut ctx, &record) {
                Ok(()) => break Ok(()),
                Err(ProcessError::Retryable(e)) if attempt + 1 < self.config.retry.attempts => {
                    Metrics::add(&self.metrics.retries, 1);
                    std::thread::sleep(self.config.retry.initial_backoff * 2u32.pow(attempt));
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "Retrying a record.");
                }
                Err(ProcessError::Retryable(e)) => {
                    let position = RetryingRecord {
                        topic: record.topic.to_owned(),
                        partition,
                        offset: record.offset,
                    };
                    let since = match &self.retrying {
                        Some((failing, since)) if *failing == position => *since,
                        _ => Instant::now(),
                    };
                    if since.elapsed() >= self.config.retry.give_up_after {
                        break Err(ProcessError::Permanent(format!(
                            "still failing after {} s of retries: {e}",
                            since.elapsed().as_secs()
                        )));
                    }
                    self.retrying = Some((position, since));
                    self.pause_requested = Some(e);
                    // Not consumed: the commit before the pause leaves the partition's
                    // offset at this record, so it is the first one read afterwards.
                    task.consumed.insert(record.topic.to_owned(), record.offset);
                    return Ok(());
                }
                Err(e) => break Err(e),
            }
        };
        if self.retrying.as_ref().is_some_and(|(failing, _)| {
            failing.partition == partition
                && failing.offset == record.offset
                && failing.topic == record.topic
        }) {
            // The record that made the loop pause went through (or is dead-lettered now).
            self.retrying = None;
            self.pause_backoff = Duration::ZERO;
            self.metrics.paused.store(0, Ordering::Relaxed);
        }
        match outcome {
            Ok(()) => {
                if let (Some(store), Some(id)) = (dedup_store, &command_id) {
                    let mut seen = record.timestamp_ms.to_be_bytes().to_vec();
                    seen.extend_from_slice(reply.as_deref().unwrap_or_default());
                    writes.put(store, id.clone(), seen);
                    if let Some(fingerprint) = fingerprint {
                        writes.put(store, fingerprint_key(id), fingerprint);
                    }
                }
                if let (Some(reply_to), Some(id), Some(body)) = (reply_to, command_id, reply) {
                    self.txn_replies.push(Reply {
                        reply_to,
                        command_id: String::from_utf8_lossy(&id).into_owned(),
                        body: ReplyBody::Processed(body),
                    });
                }
                for (reply_to, id, body) in self.scratch_origin_replies.drain(..) {
                    // The original command was decided by this task when it is in its
                    // command-id store: keep the final answer there for its retries.
                    if let Some(store) = dedup_store {
                        let decided = match task.pending.lookup(store, &id) {
                            Some(value) => value.is_some(),
                            None => task.db.get(store, &id)?.is_some(),
                        } || writes.lookup(store, &id).is_some_and(|v| v.is_some());
                        if decided {
                            let mut seen = record.timestamp_ms.to_be_bytes().to_vec();
                            seen.extend_from_slice(&body);
                            writes.put(store, id.clone(), seen);
                        }
                    }
                    self.txn_replies.push(Reply {
                        reply_to,
                        command_id: String::from_utf8_lossy(&id).into_owned(),
                        body: ReplyBody::Processed(body),
                    });
                }
                task.pending.absorb(writes);
                for output in &self.scratch_outputs {
                    self.send(output)?;
                }
            }
            Err(e) => {
                Metrics::add(&self.metrics.dead_letters, 1);
                tracing::warn!(
                    topic = record.topic,
                    partition,
                    offset = record.offset,
                    error = %e,
                    "Dead-lettering a record."
                );
                let mut dead = Output {
                    topic: dead_letter_topic(record.topic),
                    partition: None,
                    key: record.key.map(<[u8]>::to_vec),
                    value: record.value.map(<[u8]>::to_vec),
                    headers: headers.clone(),
                };
                dead.headers.extend([
                    ("dlq.error".to_owned(), e.to_string().into_bytes()),
                    ("dlq.topic".to_owned(), record.topic.as_bytes().to_vec()),
                    (
                        "dlq.partition".to_owned(),
                        partition.to_string().into_bytes(),
                    ),
                    (
                        "dlq.offset".to_owned(),
                        record.offset.to_string().into_bytes(),
                    ),
                    (
                        "dlq.application".to_owned(),
                        self.config.application_id.clone().into_bytes(),
                    ),
                ]);
                self.send(&dead)?;
                if let (Some(reply_to), Some(id)) = (reply_to, command_id) {
                    self.txn_replies.push(Reply {
                        reply_to,
                        command_id: String::from_utf8_lossy(&id).into_owned(),
                        body: ReplyBody::DeadLettered(e.to_string()),
                    });
                }
            }
        }
        Ok(())
    }

    fn punctuate_if_due(&mut self) -> Result<()> {
        let Some(interval) = self.config.punctuate_interval else {
            return Ok(());
        };
        if self.last_punctuation.elapsed() < interval || self.tasks.is_empty() {
            return Ok(());
        }
        self.last_punctuation = Instant::now();
        self.begin_if_needed()?;
        let now = SystemTime::now();
        let partitions: Vec<i32> = self.tasks.keys().copied().collect();
        for partition in partitions {
            let mut writes = Writes::new(self.stores.len());
            let mut outputs = Vec::new();
            // Timers answer no command.
            let mut no_reply = None;
            let mut origin_replies = Vec::new();
            let task = self.tasks.get_mut(&partition).expect("listed task");
            let mut ctx = Context {
                partition,
                store_ids: &self.store_ids,
                db: &task.db,
                pending: &task.pending,
                writes: &mut writes,
                outputs: &mut outputs,
                globals: &self.globals,
                reply: &mut no_reply,
                origin_replies: &mut origin_replies,
            };
            match task.processor.punctuate(&mut ctx, now) {
                Ok(()) => {
                    task.pending.absorb(&mut writes);
                    self.txn_records += outputs.len();
                    // A timer may end a saga (e.g. a reservation that never came back).
                    for (reply_to, id, body) in origin_replies {
                        self.txn_replies.push(Reply {
                            reply_to,
                            command_id: String::from_utf8_lossy(&id).into_owned(),
                            body: ReplyBody::Processed(body),
                        });
                    }
                    for output in &outputs {
                        self.send(output)?;
                    }
                }
                Err(e) => {
                    tracing::warn!(partition, error = %e, "Punctuation failed; retrying next interval.")
                }
            }
        }
        Ok(())
    }

    /// The next pause on a retryable error: doubling from 100 ms up to the policy's maximum.
    fn next_pause(&mut self) -> Duration {
        self.pause_backoff = (self.pause_backoff * 2)
            .max(Duration::from_millis(100))
            .min(self.config.retry.max_pause);
        Metrics::add(&self.metrics.retry_pauses, 1);
        self.metrics.paused.store(1, Ordering::Relaxed);
        self.pause_backoff
    }

    fn commit_due(&self) -> bool {
        self.txn_open
            && (self.txn_records >= self.config.commit_max_records
                || self.txn_started.elapsed() >= self.config.commit_interval)
    }

    /// Commits the open transaction (see the module docs for the order), or aborts it when the
    /// broker says it must be aborted.
    ///
    /// # Errors
    /// A fatal producer error (fenced by a newer incarnation): the instance must stop.
    fn commit(&mut self, group: Option<&ConsumerGroupMetadata>) -> Result<()> {
        if !self.txn_open {
            return Ok(());
        }
        let started = Instant::now();
        match self.try_commit(group) {
            Ok(()) => {
                self.txn_open = false;
                self.metrics
                    .record_commit(started.elapsed().as_micros() as u64);
                let replies = std::mem::take(&mut self.txn_replies);
                if let Some(sink) = &self.config.reply_sink
                    && !replies.is_empty()
                {
                    sink.publish(replies);
                }
                Ok(())
            }
            Err(Error::Kafka(KafkaError::Transaction(e))) if e.txn_requires_abort() => {
                tracing::warn!(error = %e, "Transaction must be aborted.");
                self.abort()
            }
            Err(e) => Err(e),
        }
    }

    fn try_commit(&mut self, group: Option<&ConsumerGroupMetadata>) -> Result<()> {
        let phase_start = Instant::now();
        self.producer
            .context()
            .changelog_offsets
            .lock()
            .expect("offsets lock")
            .clear();
        for (partition, task) in &self.tasks {
            for (store, name) in self.stores.iter().enumerate() {
                let topic = self.config.changelog_topic(name);
                for (key, value) in task.pending.store(store) {
                    let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&topic)
                        .partition(*partition)
                        .key(key.as_slice());
                    if let Some(value) = value {
                        record = record.payload(value.as_slice());
                    }
                    self.send_record(record)?;
                }
            }
        }
        let mut offsets = TopicPartitionList::new();
        for (partition, task) in &self.tasks {
            for (topic, offset) in &task.consumed {
                offsets.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
            }
        }
        if offsets.count() > 0 {
            let group = group.ok_or_else(|| {
                Error::Store("no consumer group metadata to commit offsets with".to_owned())
            })?;
            retry_transient("Sending offsets to the transaction", &self.metrics, || {
                self.producer
                    .send_offsets_to_transaction(&offsets, group, TXN_TIMEOUT)
                    .map_err(Error::from)
            })?;
        }
        let offsets_sent = Instant::now();
        failpoint::hit("before-commit");
        drain(&self.producer, TXN_TIMEOUT);
        let drained = Instant::now();
        // A retriable commit error leaves the transaction as it was: committing again is
        // what librdkafka prescribes.
        retry_transient("Committing the transaction", &self.metrics, || {
            self.producer
                .commit_transaction(TXN_TIMEOUT)
                .map_err(Error::from)
        })?;
        tracing::debug!(
            offsets_ms = offsets_sent.duration_since(phase_start).as_secs_f64() * 1e3,
            drain_ms = drained.duration_since(offsets_sent).as_secs_f64() * 1e3,
            end_ms = drained.elapsed().as_secs_f64() * 1e3,
            records = self.txn_records,
            "Committed."
        );
        failpoint::hit("after-commit");
        if let Some(failure) = self
            .producer
            .context()
            .failure
            .lock()
            .expect("failure lock")
            .take()
        {
            // A committed transaction with a failed delivery cannot happen; refuse to guess.
            return Err(Error::Store(failure));
        }

        let acknowledged = std::mem::take(
            &mut *self
                .producer
                .context()
                .changelog_offsets
                .lock()
                .expect("offsets lock"),
        );
        for (partition, task) in &mut self.tasks {
            let store_offsets: Vec<(usize, i64)> = self
                .stores
                .iter()
                .enumerate()
                .filter_map(|(store, name)| {
                    acknowledged
                        .get(&(self.config.changelog_topic(name), *partition))
                        .map(|offset| (store, offset + 1))
                })
                .collect();
            if !task.pending.is_empty() || !store_offsets.is_empty() {
                task.db.apply(&task.pending, &store_offsets)?;
            }
            task.pending.clear();
            task.consumed.clear();
        }
        failpoint::hit("after-apply");
        Ok(())
    }

    fn abort(&mut self) -> Result<()> {
        // librdkafka aborts only once every record of the transaction has its delivery
        // report, and this producer's reports are served by polling it.
        drain(&self.producer, TXN_TIMEOUT);
        self.producer.abort_transaction(TXN_TIMEOUT)?;
        self.producer
            .context()
            .failure
            .lock()
            .expect("failure lock")
            .take();
        for task in self.tasks.values_mut() {
            task.pending.clear();
            task.consumed.clear();
        }
        // The commands will be processed again; their replies with them.
        self.txn_replies.clear();
        self.txn_open = false;
        self.rewind = true;
        Metrics::add(&self.metrics.aborts, 1);
        Ok(())
    }

    /// Opens the tasks of newly assigned partitions and restores all their stores in one
    /// pass before any of them processes a record.
    fn open_tasks(&mut self, partitions: &std::collections::BTreeSet<i32>) -> Result<()> {
        let started = Instant::now();
        let mut opened = Vec::new();
        for partition in partitions {
            if self.tasks.contains_key(partition) {
                continue;
            }
            let path = self
                .config
                .state_dir
                .join(&self.config.application_id)
                .join(partition.to_string());
            opened.push((
                *partition,
                TaskDb::open_with_write_buffer(
                    &path,
                    &self.stores,
                    self.config.state_write_buffer_bytes,
                    self.config.state_offsets_write_buffer_bytes,
                )?,
            ));
        }
        let mut targets = Vec::with_capacity(opened.len() * self.stores.len());
        for (partition, db) in &opened {
            for (store, name) in self.stores.iter().enumerate() {
                targets.push(Target {
                    db,
                    store,
                    topic: self.config.changelog_topic(name),
                    partition: *partition,
                });
            }
        }
        self.metrics.restoring.store(1, Ordering::Relaxed);
        let restored = retry_transient("Restoring task state", &self.metrics, || {
            self.restorer.restore(&targets, &self.metrics)
        });
        self.metrics.restoring.store(0, Ordering::Relaxed);
        let restored = restored?;
        drop(targets);
        Metrics::add(&self.metrics.restored_tasks, opened.len() as u64);
        Metrics::add(
            &self.metrics.restore_micros,
            started.elapsed().as_micros() as u64,
        );
        if restored > 0 {
            tracing::info!(
                tasks = opened.len(),
                restored,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "Restored task state."
            );
        }
        for (partition, db) in opened {
            self.tasks.insert(
                partition,
                Task {
                    processor: (self.factory)(partition),
                    db,
                    pending: Writes::new(self.stores.len()),
                    consumed: HashMap::new(),
                },
            );
        }
        self.metrics
            .tasks
            .store(self.tasks.len() as i64, Ordering::Relaxed);
        Ok(())
    }

    fn close_task(&mut self, partition: i32) {
        if let Some(task) = self.tasks.remove(&partition)
            && let Err(e) = task.db.flush()
        {
            tracing::warn!(partition, error = %e, "Flushing task state on close failed; the changelog will restore it.");
        }
        self.metrics
            .tasks
            .store(self.tasks.len() as i64, Ordering::Relaxed);
    }
}

// --- consumer context: rebalances -----------------------------------------------------------

struct RuntimeContext {
    engine: Mutex<Option<Engine>>,
    input_topics: HashSet<String>,
    metrics: Arc<Metrics>,
}

impl RuntimeContext {
    fn engine(&self) -> MutexGuard<'_, Option<Engine>> {
        self.engine.lock().expect("engine lock")
    }
}

impl ClientContext for RuntimeContext {
    fn stats(&self, statistics: Statistics) {
        let lag: i64 = statistics
            .topics
            .iter()
            .filter(|(topic, _)| self.input_topics.contains(*topic))
            .flat_map(|(_, t)| t.partitions.values())
            .map(|p| p.consumer_lag.max(0))
            .sum();
        self.metrics.consumer_lag.store(lag, Ordering::Relaxed);
    }
}

impl ConsumerContext for RuntimeContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            let mut guard = self.engine();
            let Some(engine) = guard.as_mut() else { return };
            // Commit what was processed before the partitions go to another instance.
            let group = consumer.group_metadata();
            if let Err(e) = engine.commit(group.as_ref()) {
                tracing::error!(error = %e, "Commit on revocation failed.");
                engine.fatal.get_or_insert(e);
            }
            let revoked: HashSet<i32> = partitions
                .elements()
                .iter()
                .map(|e| e.partition())
                .collect();
            for partition in revoked {
                engine.close_task(partition);
            }
            tracing::info!(tasks = engine.tasks.len(), "Partitions revoked.");
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(partitions) => {
                let mut guard = self.engine();
                let Some(engine) = guard.as_mut() else { return };
                let assigned: std::collections::BTreeSet<i32> = partitions
                    .elements()
                    .iter()
                    .map(|e| e.partition())
                    .collect();
                if let Err(e) = engine.open_tasks(&assigned) {
                    tracing::error!(error = %e, "Opening tasks failed; the runtime stops.");
                    engine.fatal.get_or_insert(e);
                }
                engine
                    .metrics
                    .assignment_received
                    .store(1, Ordering::Relaxed);
                tracing::info!(tasks = engine.tasks.len(), "Partitions assigned.");
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::error!(error = %e, "Rebalance error."),
        }
    }
}

// --- the loop ---------------------------------------------------------------------------------

struct Loop {
    consumer: BaseConsumer<RuntimeContext>,
    _globals: Option<global::GlobalFollower>,
}

impl Loop {
    fn new(
        config: RuntimeConfig,
        factory: ProcessorFactory,
        metrics: Arc<Metrics>,
    ) -> Result<Self> {
        let stores = config.all_stores();
        let stores_len = stores.len();
        let dedup_store = stores.iter().position(|s| s == COMMAND_IDS_STORE);
        let store_ids = stores
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), i))
            .collect();
        let transactional_id = format!("{}-{}", config.application_id, config.instance_id);
        let producer: BaseProducer<TxnProducerContext> = config
            .kafka
            .transactional_producer(&transactional_id)
            .create_with_context(TxnProducerContext::default())?;
        // Fences the previous incarnation of this instance and aborts its open transaction,
        // before any changelog is read: its records must not be half-visible to the restore.
        producer.init_transactions(TXN_TIMEOUT)?;
        let (globals, follower) = global::start(
            &config.kafka,
            &config.global_tables,
            Duration::from_secs(60),
        )?;
        let restorer = Restorer::new(&config.kafka)?;

        let context = RuntimeContext {
            engine: Mutex::new(None),
            input_topics: config.input_topics.iter().cloned().collect(),
            metrics: metrics.clone(),
        };
        let consumer: BaseConsumer<RuntimeContext> = config
            .kafka
            .read_committed_consumer(&config.application_id)
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "1500")
            .set("statistics.interval.ms", "5000")
            .set("partition.assignment.strategy", "range")
            .create_with_context(context)?;
        let topics: Vec<&str> = config.input_topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        *consumer.context().engine() = Some(Engine {
            factory,
            store_ids,
            stores,
            producer,
            restorer,
            tasks: BTreeMap::new(),
            globals,
            metrics,
            txn_open: false,
            txn_records: 0,
            txn_started: Instant::now(),
            last_punctuation: Instant::now(),
            fatal: None,
            rewind: false,
            scratch_writes: Writes::new(stores_len),
            scratch_outputs: Vec::new(),
            txn_replies: Vec::new(),
            scratch_origin_replies: Vec::new(),
            dedup_store,
            pause_requested: None,
            retrying: None,
            pause_backoff: Duration::ZERO,
            config,
        });
        Ok(Self {
            consumer,
            _globals: follower,
        })
    }

    fn run(&mut self, stop: &AtomicBool) -> Result<()> {
        let result = self.run_until(stop);
        // Commit and close cleanly; on a fatal error, abort (nothing is lost: the transaction
        // never committed) and leave the rest to the next incarnation.
        let mut guard = self.consumer.context().engine();
        if let Some(engine) = guard.as_mut() {
            if result.is_ok() {
                let group = self.consumer.group_metadata();
                if let Err(e) = engine.commit(group.as_ref()) {
                    tracing::error!(error = %e, "Final commit failed.");
                }
            }
            let partitions: Vec<i32> = engine.tasks.keys().copied().collect();
            for partition in partitions {
                engine.close_task(partition);
            }
        }
        drop(guard);
        self.consumer.unsubscribe();
        result
    }

    fn run_until(&mut self, stop: &AtomicBool) -> Result<()> {
        while !stop.load(Ordering::Acquire) {
            self.consumer.context().metrics.beat();
            // With an open transaction and commit-when-idle, only look whether a record is
            // already waiting: if none is, commit now rather than after the interval.
            let eager = {
                let guard = self.consumer.context().engine();
                let engine = guard.as_ref().expect("engine is set before the loop");
                engine.config.commit_when_idle && engine.txn_open
            };
            let wait = if eager {
                Duration::ZERO
            } else {
                Duration::from_millis(20)
            };
            let message = self.consumer.poll(wait);
            let mut guard = self.consumer.context().engine();
            let engine = guard.as_mut().expect("engine is set before the loop");
            if let Some(e) = engine.fatal.take() {
                return Err(e);
            }
            let idle = message.is_none();
            match message {
                Some(Ok(message)) => engine.handle(&message)?,
                Some(Err(e)) => tracing::warn!(error = %e, "Consumer error."),
                None => {}
            }
            if let Some(reason) = engine.pause_requested.take() {
                // Commit what was processed before the failing record (its own offset stays
                // uncommitted), wait, and consume again from the committed offsets: the
                // failing record comes back first, nothing before it is processed twice.
                let group = self.consumer.group_metadata();
                engine.commit(group.as_ref())?;
                engine.rewind = false;
                let pause = engine.next_pause();
                tracing::warn!(error = %reason, pause_ms = pause.as_millis() as u64,
                    "A record keeps failing with a retryable error; pausing before trying again.");
                drop(guard);
                let until = Instant::now() + pause;
                while Instant::now() < until && !stop.load(Ordering::Acquire) {
                    self.consumer.context().metrics.beat();
                    std::thread::sleep(Duration::from_millis(20));
                }
                self.rewind_to_committed()?;
                continue;
            }
            engine.punctuate_if_due()?;
            if engine.commit_due() || (eager && idle) {
                let group = self.consumer.group_metadata();
                engine.commit(group.as_ref())?;
            }
            engine.producer.poll(Duration::ZERO);
            if engine.rewind {
                engine.rewind = false;
                drop(guard);
                self.rewind_to_committed()?;
            }
        }
        Ok(())
    }

    /// After an abort, consume again from the last committed offsets.
    fn rewind_to_committed(&self) -> Result<()> {
        let assignment = self.consumer.assignment()?;
        let metrics = &self.consumer.context().metrics;
        let committed = retry_transient("Reading the committed offsets", metrics, || {
            self.consumer
                .committed_offsets(assignment.clone(), Duration::from_secs(10))
                .map_err(Error::from)
        })?;
        for element in committed.elements() {
            let offset = match element.offset() {
                Offset::Offset(o) => Offset::Offset(o),
                _ => Offset::Beginning,
            };
            self.consumer.seek(
                element.topic(),
                element.partition(),
                offset,
                Duration::from_secs(10),
            )?;
        }
        tracing::info!("Rewound to the committed offsets after an abort.");
        Ok(())
    }
}
