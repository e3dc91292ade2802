//! Exactly-once runtime benchmark: throughput and end-to-end latency of a stateful processor
//! (per-key running totals: one RocksDB read and write per record, a changelog record per key
//! per commit) side by side with the ceiling, a plain rdkafka consume → transactional produce
//! loop with no state, on the same broker in the same run; then restore speed.
//!
//! ```sh
//! scripts/stack up && source .stack/env
//! cargo run --release -p tcom-bench --bin runtime-bench -- [records] [keys]
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use tcom_bench::{Latencies, now_us};
use tcom_state::admin::{TopicSpec, ensure_topics};
use tcom_state::client::KafkaSettings;
use tcom_state::{Context, Output, ProcessError, Processor, Record, RuntimeConfig};

const PARTITIONS: i32 = 6;
const COMMIT_INTERVAL: Duration = Duration::from_millis(100);
const COMMIT_MAX_RECORDS: usize = 5000;

struct RunningTotals {
    output: String,
}

impl Processor for RunningTotals {
    fn process(&mut self, ctx: &mut Context<'_>, record: &Record<'_>) -> Result<(), ProcessError> {
        let key = record.key.unwrap_or_default();
        let value = record.value.unwrap_or_default();
        let amount = value.iter().rev().take_while(|b| **b != b':').count() as i64;
        let total = ctx
            .get("totals", key)?
            .map(|b| i64::from_be_bytes(b.try_into().unwrap_or_default()))
            .unwrap_or(0)
            + amount;
        ctx.put("totals", key.to_vec(), total.to_be_bytes().to_vec())?;
        // The input value carries its produce time; pass it on for the latency measurement.
        ctx.emit(Output::new(
            self.output.clone(),
            key.to_vec(),
            value.to_vec(),
        ));
        Ok(())
    }
}

fn unique(prefix: &str) -> String {
    format!("bench-{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Sends a record, waiting for room when the producer's queue is full.
fn send_waiting<K, P>(producer: &BaseProducer, mut record: BaseRecord<'_, K, P>)
where
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
{
    while let Err((_, back)) = producer.send(record) {
        producer.poll(Duration::from_millis(10));
        record = back;
    }
}

fn preload(kafka: &KafkaSettings, topic: &str, records: usize, keys: usize) {
    let producer: BaseProducer = kafka
        .client_config()
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .set("partitioner", "murmur2_random")
        .create()
        .expect("producer");
    for i in 0..records {
        let key = format!("k{}", i % keys);
        let value = format!("{}:x", now_us());
        let record = BaseRecord::to(topic).key(&key).payload(&value);
        send_waiting(&producer, record);
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
}

/// Produces `rate` records per second for `seconds`, values carrying their produce time.
fn paced(kafka: KafkaSettings, topic: String, rate: u64, seconds: u64, keys: usize) {
    let producer: BaseProducer = kafka
        .client_config()
        .set("linger.ms", "0")
        .set("partitioner", "murmur2_random")
        .create()
        .expect("producer");
    let start = Instant::now();
    let total = rate * seconds;
    for i in 0..total {
        let due = start + Duration::from_micros(i * 1_000_000 / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let key = format!("k{}", i as usize % keys);
        let value = format!("{}:x", now_us());
        let _ = producer.send(BaseRecord::to(&topic).key(&key).payload(&value));
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

/// Reads committed outputs and records, per output, now minus the produce time in its value.
fn measure_latency(
    kafka: &KafkaSettings,
    topic: &str,
    expected: usize,
    stop: &AtomicBool,
) -> Latencies {
    let consumer: BaseConsumer = kafka
        .client_config()
        .set("group.id", unique("latency"))
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "5")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&assignment).expect("assign");
    let mut latencies = Latencies::default();
    let deadline = Instant::now() + Duration::from_secs(120);
    while latencies.len() < expected && Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
            let received = now_us();
            let sent: i64 = std::str::from_utf8(m.payload().unwrap_or_default())
                .ok()
                .and_then(|v| v.split(':').next())
                .and_then(|t| t.parse().ok())
                .unwrap_or(received);
            latencies.push(Duration::from_micros((received - sent).max(0) as u64));
        }
    }
    latencies
}

/// The ceiling: consume → transactional produce, no state, the same commit policy.
fn plain_loop(
    kafka: KafkaSettings,
    input: String,
    output: String,
    processed: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    let group = unique("plain");
    let consumer: BaseConsumer = kafka
        .read_committed_consumer(&group)
        .create()
        .expect("consumer");
    consumer.subscribe(&[&input]).expect("subscribe");
    let producer: BaseProducer = kafka
        .transactional_producer(&unique("plain-txn"))
        .create()
        .expect("producer");
    producer
        .init_transactions(Duration::from_secs(30))
        .expect("init");
    let mut open = false;
    let mut since = Instant::now();
    let mut in_txn = 0usize;
    let mut offsets: HashMap<i32, i64> = HashMap::new();
    let commit = |producer: &BaseProducer, offsets: &mut HashMap<i32, i64>| {
        let mut tpl = TopicPartitionList::new();
        for (p, o) in offsets.drain() {
            tpl.add_partition_offset(&input, p, Offset::Offset(o))
                .expect("tpl");
        }
        let group = consumer.group_metadata().expect("group metadata");
        producer
            .send_offsets_to_transaction(&tpl, &group, Duration::from_secs(30))
            .expect("offsets");
        tcom_state::runtime::drain(producer, Duration::from_secs(30));
        producer
            .commit_transaction(Duration::from_secs(30))
            .expect("commit");
    };
    while !stop.load(Ordering::Relaxed) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(20)) {
            if !open {
                producer.begin_transaction().expect("begin");
                open = true;
                since = Instant::now();
            }
            let record = BaseRecord::to(&output)
                .key(m.key().unwrap_or_default())
                .payload(m.payload().unwrap_or_default());
            send_waiting(&producer, record);
            offsets.insert(m.partition(), m.offset() + 1);
            in_txn += 1;
        }
        if open && (in_txn >= COMMIT_MAX_RECORDS || since.elapsed() >= COMMIT_INTERVAL) {
            commit(&producer, &mut offsets);
            processed.fetch_add(in_txn as u64, Ordering::Relaxed);
            in_txn = 0;
            open = false;
        }
        producer.poll(Duration::ZERO);
    }
    if open {
        commit(&producer, &mut offsets);
        processed.fetch_add(in_txn as u64, Ordering::Relaxed);
    }
}

/// Waits until `counter` reaches `target`; returns the time from its first increment.
fn time_to(counter: &AtomicU64, target: u64) -> Duration {
    while counter.load(Ordering::Relaxed) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let first = Instant::now();
    while counter.load(Ordering::Relaxed) < target {
        std::thread::sleep(Duration::from_millis(1));
    }
    first.elapsed()
}

async fn topics(kafka: &KafkaSettings, name: &str) -> (String, String) {
    let (input, output) = (
        unique(&format!("{name}-in")),
        unique(&format!("{name}-out")),
    );
    ensure_topics(
        kafka,
        &[
            TopicSpec::new(&input, PARTITIONS),
            TopicSpec::new(&output, PARTITIONS),
        ],
    )
    .await
    .expect("topics");
    (input, output)
}

async fn start_runtime(
    kafka: &KafkaSettings,
    app: &str,
    input: &str,
    output: &str,
    state: &std::path::Path,
) -> tcom_state::RuntimeHandle {
    let mut config = RuntimeConfig::new(
        app,
        "bench-1",
        kafka.clone(),
        vec![input.to_owned()],
        vec!["totals".to_owned()],
        state.to_owned(),
    );
    config.commit_interval = COMMIT_INTERVAL;
    config.commit_max_records = COMMIT_MAX_RECORDS;
    let output = output.to_owned();
    tcom_state::start(
        config,
        Arc::new(move |_| {
            Box::new(RunningTotals {
                output: output.clone(),
            })
        }),
    )
    .await
    .expect("runtime starts")
}

/// Counts what the runtime has processed *and committed*.
fn committed_counter(handle: &tcom_state::RuntimeHandle) -> (Arc<AtomicU64>, Arc<AtomicBool>) {
    let metrics = handle.metrics().clone();
    let counter = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (c, s) = (counter.clone(), stop.clone());
    std::thread::spawn(move || {
        let mut last_commits = 0;
        let mut seen = 0;
        while !s.load(Ordering::Relaxed) {
            let commits = metrics.commits.load(Ordering::Relaxed);
            if commits != last_commits {
                // Records counted before this commit are committed now.
                c.store(seen, Ordering::Relaxed);
                last_commits = commits;
            }
            seen = metrics.records.load(Ordering::Relaxed);
            std::thread::sleep(Duration::from_micros(200));
        }
    });
    (counter, stop)
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_owned)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let records: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let keys: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let kafka = KafkaSettings::new(
        std::env::var("KAFKA_BOOTSTRAP_SERVERS")
            .expect("KAFKA_BOOTSTRAP_SERVERS (source .stack/env)"),
    );
    let state_root = std::env::temp_dir().join(unique("state"));
    println!(
        "runtime-bench: {records} records, {keys} keys, {PARTITIONS} partitions, commit every {COMMIT_INTERVAL:?} or {COMMIT_MAX_RECORDS} records"
    );

    // --- throughput: plain loop ---
    let (input, output) = topics(&kafka, "plain").await;
    preload(&kafka, &input, records, keys);
    let processed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let plain = {
        let (k, i, o, p, s) = (
            kafka.clone(),
            input.clone(),
            output.clone(),
            processed.clone(),
            stop.clone(),
        );
        std::thread::spawn(move || plain_loop(k, i, o, p, s))
    };
    let plain_time = time_to(&processed, records as u64);
    stop.store(true, Ordering::Relaxed);
    plain.join().expect("plain loop");
    let plain_rate = records as f64 / plain_time.as_secs_f64();

    // --- throughput: stateful runtime ---
    let (input, output) = topics(&kafka, "stateful").await;
    preload(&kafka, &input, records, keys);
    let handle = start_runtime(
        &kafka,
        &unique("stateful"),
        &input,
        &output,
        &state_root.join("throughput"),
    )
    .await;
    let (committed, stop_counter) = committed_counter(&handle);
    let stateful_time = tokio::task::spawn_blocking(move || time_to(&committed, records as u64))
        .await
        .unwrap();
    stop_counter.store(true, Ordering::Relaxed);
    let m = handle.metrics().clone();
    let commits = m.commits.load(Ordering::Relaxed).max(1);
    let commit_note = format!(
        "{commits} commits, mean {:.1} ms, max {:.1} ms",
        m.commit_micros_total.load(Ordering::Relaxed) as f64 / commits as f64 / 1e3,
        m.commit_micros_max.load(Ordering::Relaxed) as f64 / 1e3
    );
    tokio::task::spawn_blocking(move || handle.join())
        .await
        .unwrap()
        .expect("runtime stops");
    let stateful_rate = records as f64 / stateful_time.as_secs_f64();

    println!();
    println!("throughput (records/s, preloaded input, until all committed)");
    println!("  plain consume->transactional produce : {plain_rate:>10.0}");
    println!(
        "  stateful runtime (RocksDB + changelog): {stateful_rate:>10.0}  ratio {:.2}  ({commit_note})",
        stateful_rate / plain_rate
    );

    // --- latency at a fixed rate, both ---
    let rate = 2000u64;
    let seconds = 10u64;
    let expected = (rate * seconds) as usize;
    println!();
    println!(
        "end-to-end latency at {rate} records/s for {seconds}s (produce -> readable by a read_committed consumer)"
    );
    for mode in ["plain", "stateful"] {
        let (input, output) = topics(&kafka, &format!("lat-{mode}")).await;
        let stop = Arc::new(AtomicBool::new(false));
        let processed = Arc::new(AtomicU64::new(0));
        let mut runtime = None;
        let mut plain = None;
        if mode == "plain" {
            let (k, i, o, p, s) = (
                kafka.clone(),
                input.clone(),
                output.clone(),
                processed.clone(),
                stop.clone(),
            );
            plain = Some(std::thread::spawn(move || plain_loop(k, i, o, p, s)));
            // Let the group assign before traffic starts.
            tokio::time::sleep(Duration::from_secs(4)).await;
        } else {
            runtime = Some(
                start_runtime(
                    &kafka,
                    &unique("lat"),
                    &input,
                    &output,
                    &state_root.join("latency"),
                )
                .await,
            );
            tokio::time::sleep(Duration::from_secs(4)).await;
        }
        let producer = {
            let (k, i) = (kafka.clone(), input.clone());
            std::thread::spawn(move || paced(k, i, rate, seconds, keys))
        };
        let (k, o, s) = (kafka.clone(), output.clone(), stop.clone());
        let mut latencies =
            tokio::task::spawn_blocking(move || measure_latency(&k, &o, expected, &s))
                .await
                .unwrap();
        producer.join().expect("producer");
        stop.store(true, Ordering::Relaxed);
        if let Some(p) = plain {
            p.join().expect("plain loop");
        }
        if let Some(r) = runtime {
            tokio::task::spawn_blocking(move || r.join())
                .await
                .unwrap()
                .expect("runtime stops");
        }
        println!(
            "  {mode:<8} n={:<6} p50 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms",
            latencies.len(),
            latencies.percentile(50.0).as_secs_f64() * 1e3,
            latencies.percentile(99.0).as_secs_f64() * 1e3,
            latencies.percentile(100.0).as_secs_f64() * 1e3,
        );
    }

    // --- restore ---
    let restore_records = records.max(200_000);
    let app = unique("restore");
    let (input, output) = topics(&kafka, "restore").await;
    let changelog = format!("{app}-totals-changelog");
    ensure_topics(&kafka, &[TopicSpec::compacted(&changelog, PARTITIONS)])
        .await
        .expect("changelog");
    {
        let producer: BaseProducer = kafka
            .client_config()
            .set("linger.ms", "5")
            .set("queue.buffering.max.messages", "1000000")
            .create()
            .expect("producer");
        for i in 0..restore_records {
            let key = format!("key-{i}");
            let record = BaseRecord::to(&changelog)
                .partition((i % PARTITIONS as usize) as i32)
                .key(&key)
                .payload(&[0u8, 0, 0, 0, 0, 0, 0, 1][..]);
            send_waiting(&producer, record);
        }
        producer.flush(Duration::from_secs(60)).expect("flush");
    }
    let started = Instant::now();
    let handle = start_runtime(&kafka, &app, &input, &output, &state_root.join("restore")).await;
    let metrics = handle.metrics().clone();
    while metrics.restored_records.load(Ordering::Relaxed) < restore_records as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "restore did not finish"
        );
    }
    let with_join = started.elapsed();
    let restoring = Duration::from_micros(metrics.restore_micros.load(Ordering::Relaxed));
    tokio::task::spawn_blocking(move || handle.join())
        .await
        .unwrap()
        .expect("runtime stops");
    println!();
    println!(
        "restore: {restore_records} changelog records in {:.2}s of restoring = {:.0} records/s ({:.2}s from start including the group join)",
        restoring.as_secs_f64(),
        restore_records as f64 / restoring.as_secs_f64(),
        with_join.as_secs_f64(),
    );
    println!("peak RSS {:.0} MiB", peak_rss_mib());
    let _ = std::fs::remove_dir_all(&state_root);
}
