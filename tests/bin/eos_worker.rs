//! A stateful processor in a child process, for the runtime's crash, rebalance, restore and
//! dead-letter tests: per-key running totals with one output per input.
//!
//! Input: key = account, value = `"<input id>:<amount>"` (or anything else: dead-lettered;
//! an id starting with `flaky` fails once with a retryable error, `slow` for a second after its
//! first attempt — as a schema registry that is briefly down —, `stuck` always does).
//! Output (to `$OUTPUT`): key = account, value = `"<input id>:<total after it>"`, which is
//! also the reply to a command (an input with `command-id` and `reply-to` headers).
//! Store `totals`: account → total (i64, big-endian).
//!
//! Environment: `KAFKA_BOOTSTRAP_SERVERS`, `APP_ID`, `INSTANCE_ID`, `INPUT`, `OUTPUT`,
//! `STATE_DIR`, optional `DELAY_MS` (per record, to stretch the stream so kills land
//! mid-stream), `GIVE_UP_MS` (how long a retryable failure is retried before the record is
//! dead-lettered), `WRITE_BUFFER_BYTES` (RocksDB memtable size: small ones flush often),
//! `REPLY_LOG` (a file the published replies are appended to, one line each:
//! `<reply-to> <command id> <inputs committed when published> <body>`) and
//! `TCOM_FAILPOINT`. Stops gracefully on SIGTERM and prints its metrics as
//! one JSON line.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use tcom_state::client::KafkaSettings;
use tcom_state::{
    Context, Output, ProcessError, Processor, Record, Reply, ReplyBody, ReplySink, RuntimeConfig,
};

/// Appends each published reply to a file, with the number of inputs the application's
/// consumer group had committed at that moment: the runtime promises to publish a reply only
/// after the transaction that decided it committed, and the line shows whether it did.
struct FileSink {
    file: std::sync::Mutex<std::fs::File>,
    group: BaseConsumer,
    input: String,
}

impl std::fmt::Debug for FileSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSink")
            .field("input", &self.input)
            .finish()
    }
}

impl FileSink {
    fn committed_inputs(&self) -> i64 {
        let timeout = Duration::from_secs(10);
        let metadata = self
            .group
            .fetch_metadata(Some(&self.input), timeout)
            .expect("input metadata");
        let mut partitions = TopicPartitionList::new();
        for p in metadata.topics()[0].partitions() {
            partitions.add_partition(&self.input, p.id());
        }
        self.group
            .committed_offsets(partitions, timeout)
            .expect("committed offsets")
            .elements()
            .iter()
            .filter_map(|tp| match tp.offset() {
                Offset::Offset(n) => Some(n),
                _ => None,
            })
            .sum()
    }
}

impl ReplySink for FileSink {
    fn publish(&self, replies: Vec<Reply>) {
        use std::io::Write;
        let committed = self.committed_inputs();
        let mut file = self.file.lock().expect("reply log lock");
        for reply in replies {
            let body = match reply.body {
                ReplyBody::Processed(body) => {
                    format!("processed:{}", String::from_utf8_lossy(&body))
                }
                ReplyBody::DeadLettered(error) => format!("dead:{error}"),
                ReplyBody::KeyReused => "reused".to_owned(),
            };
            // Unbuffered: a line written is in the file even if the process aborts next.
            writeln!(
                file,
                "{} {} {committed} {body}",
                reply.reply_to, reply.command_id
            )
            .expect("reply log written");
        }
    }
}

struct RunningTotals {
    output: String,
    delay: Duration,
    /// Offsets of `flaky…` inputs that already failed once.
    failed_once: std::collections::HashSet<i64>,
    /// When each `slow…` input first failed.
    first_failure: std::collections::HashMap<i64, std::time::Instant>,
}

impl Processor for RunningTotals {
    fn process(&mut self, ctx: &mut Context<'_>, record: &Record<'_>) -> Result<(), ProcessError> {
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        let key = record
            .key
            .ok_or_else(|| ProcessError::Permanent("no key".into()))?;
        let value = std::str::from_utf8(record.value.unwrap_or_default())
            .map_err(|_| ProcessError::Permanent("value is not UTF-8".into()))?;
        let (id, amount) = value
            .split_once(':')
            .and_then(|(id, amount)| Some((id, amount.parse::<i64>().ok()?)))
            .ok_or_else(|| ProcessError::Permanent(format!("malformed value {value:?}")))?;
        // `flaky…` inputs fail once with a retryable error, `stuck…` ones every time.
        let slow_and_not_yet = id.starts_with("slow")
            && self
                .first_failure
                .entry(record.offset)
                .or_insert_with(std::time::Instant::now)
                .elapsed()
                < Duration::from_secs(1);
        if id.starts_with("stuck")
            || slow_and_not_yet
            || (id.starts_with("flaky") && self.failed_once.insert(record.offset))
        {
            return Err(ProcessError::Retryable(format!(
                "{id} is not available yet"
            )));
        }
        let total = ctx
            .get("totals", key)?
            .map(|b| i64::from_be_bytes(b.try_into().expect("8 bytes")))
            .unwrap_or(0)
            + amount;
        ctx.put("totals", key.to_vec(), total.to_be_bytes().to_vec())?;
        ctx.emit(Output::new(
            self.output.clone(),
            key.to_vec(),
            format!("{id}:{total}"),
        ));
        ctx.reply(format!("{id}:{total}"));
        Ok(())
    }
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} must be set"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let output = var("OUTPUT");
    let delay = Duration::from_millis(
        std::env::var("DELAY_MS")
            .ok()
            .and_then(|d| d.parse().ok())
            .unwrap_or(0),
    );
    let number = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let mut config = RuntimeConfig::new(
        var("APP_ID"),
        var("INSTANCE_ID"),
        KafkaSettings::new(var("KAFKA_BOOTSTRAP_SERVERS")),
        vec![var("INPUT")],
        vec!["totals".to_owned()],
        var("STATE_DIR").into(),
    );
    if let Some(ms) = number("GIVE_UP_MS") {
        config.retry.give_up_after = Duration::from_millis(ms);
    }
    if let Some(bytes) = number("WRITE_BUFFER_BYTES") {
        config.state_write_buffer_bytes = bytes as usize;
    }
    if let Some(bytes) = number("OFFSETS_WRITE_BUFFER_BYTES") {
        config.state_offsets_write_buffer_bytes = bytes as usize;
    }
    if let Some(records) = number("COMMIT_MAX_RECORDS") {
        config.commit_max_records = records as usize;
    }
    if let Ok(path) = std::env::var("REPLY_LOG") {
        // Read-uncommitted: the offsets of the last *committed* transaction, at once, instead
        // of waiting for a pending one (which, on the runtime's own thread, never commits).
        let group = config
            .kafka
            .client_config()
            .set("group.id", &config.application_id)
            .set("isolation.level", "read_uncommitted")
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer for committed offsets");
        config.reply_sink = Some(Arc::new(FileSink {
            file: std::sync::Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .expect("reply log opens"),
            ),
            group,
            input: var("INPUT"),
        }));
    }
    let factory: tcom_state::ProcessorFactory = Arc::new(move |_| {
        Box::new(RunningTotals {
            output: output.clone(),
            delay,
            failed_once: Default::default(),
            first_failure: Default::default(),
        })
    });
    let handle = tcom_state::start(config, factory)
        .await
        .expect("runtime starts");
    eprintln!("worker started");
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal");
    // A runtime that ends by itself (a fatal error) ends the worker too, with its error:
    // a worker that lingers without its loop would make a test wait for nothing.
    let ended = async {
        while !handle.is_finished() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
        () = ended => {}
    }
    let metrics = handle.metrics().clone();
    tokio::task::spawn_blocking(move || handle.join())
        .await
        .unwrap()
        .expect("clean stop");
    use std::sync::atomic::Ordering::Relaxed;
    println!(
        "{{\"records\":{},\"dead_letters\":{},\"retries\":{},\"retry_pauses\":{},\"restored_records\":{},\"commits\":{},\"duplicates\":{}}}",
        metrics.records.load(Relaxed),
        metrics.dead_letters.load(Relaxed),
        metrics.retries.load(Relaxed),
        metrics.retry_pauses.load(Relaxed),
        metrics.restored_records.load(Relaxed),
        metrics.commits.load(Relaxed),
        metrics.duplicates.load(Relaxed),
    );
}
