//! The exactly-once runtime under crashes, rebalances, lost local state and poison records,
//! on the real broker. A child process (`eos_worker`) keeps per-key running totals and emits
//! one output per input; every test checks, per key, that the outputs are exactly the running
//! sums of the inputs in order — a lost, duplicated or double-applied input breaks the sums.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tcom_state::admin::{TopicSpec, ensure_topics};
use tcom_tests::{stack, unique};

const PARTITIONS: i32 = 4;

struct Scenario {
    app: String,
    input: String,
    output: String,
    root: PathBuf,
}

impl Scenario {
    async fn new(name: &str) -> Self {
        let scenario = Self {
            app: unique(name),
            input: unique(&format!("{name}-in")),
            output: unique(&format!("{name}-out")),
            root: std::env::temp_dir().join(unique("tcom-eos")),
        };
        ensure_topics(
            &stack().kafka_settings(),
            &[
                TopicSpec::new(&scenario.input, PARTITIONS),
                TopicSpec::new(&scenario.output, PARTITIONS),
            ],
        )
        .await
        .unwrap();
        scenario
    }

    fn state_dir(&self, instance: &str) -> PathBuf {
        self.root.join(instance)
    }

    fn worker(&self, instance: &str, extra: &[(&str, &str)]) -> Worker {
        let mut command = Command::new(env!("CARGO_BIN_EXE_eos_worker"));
        command
            .env("KAFKA_BOOTSTRAP_SERVERS", stack().kafka)
            .env("APP_ID", &self.app)
            .env("INSTANCE_ID", instance)
            .env("INPUT", &self.input)
            .env("OUTPUT", &self.output)
            .env("STATE_DIR", self.state_dir(instance))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in extra {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("eos_worker starts");
        // Passed on as it comes; the failpoint lines are kept for `wait_for_crash`.
        let stderr = child.stderr.take().expect("piped stderr");
        let stderr = std::thread::spawn(move || {
            use std::io::BufRead;
            let mut failpoints = Vec::new();
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("{line}");
                if line.starts_with("failpoint ") {
                    failpoints.push(line);
                }
            }
            failpoints
        });
        Worker { child, stderr }
    }

    fn changelog(&self) -> String {
        format!("{}-totals-changelog", self.app)
    }
}

struct Worker {
    child: Child,
    /// The worker's failpoint lines, once its stderr closed.
    stderr: std::thread::JoinHandle<Vec<String>>,
}

impl Worker {
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops gracefully (SIGTERM) and returns the metrics line it printed.
    fn terminate(mut self) -> serde_json::Value {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let output = std::mem::replace(&mut self.child, Command::new("true").spawn().unwrap())
            .wait_with_output()
            .unwrap();
        assert!(
            output.status.success(),
            "worker did not stop cleanly: {:?}",
            output.status
        );
        let line = String::from_utf8_lossy(&output.stdout);
        serde_json::from_str(line.trim().lines().last().unwrap_or("{}")).unwrap()
    }

    /// Waits for the worker to be aborted by its failpoint `spec` (`name:n`): SIGABRT, and
    /// the failpoint's own line on stderr. Any other end — a panic at start-up (exit 101), a
    /// fatal runtime error, an abort elsewhere — is not the crash the test wanted. Shown to
    /// fail by making `eos_worker` panic at start-up for `after-apply:4`: "the worker ended
    /// with exit status: 101 and failpoint lines [], instead of failpoint after-apply …".
    fn wait_for_crash(mut self, spec: &str, timeout: Duration) {
        use std::os::unix::process::ExitStatusExt;
        let name = spec.split_once(':').map_or(spec, |(name, _)| name);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                let lines = self.stderr.join().unwrap_or_default();
                let expected = format!("failpoint {name} reached: aborting");
                assert!(
                    status.signal() == Some(6) && lines.contains(&expected),
                    "the worker ended with {status} and failpoint lines {lines:?}, instead of \
                     failpoint {name} aborting it (SIGABRT after {expected:?})"
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
        panic!("the worker did not reach its failpoint {spec} within {timeout:?}");
    }
}

/// How many inputs the application has committed: its consumer group's committed offsets,
/// summed over the input's partitions. Offsets sent in a transaction that has not committed
/// (a killed worker's) do not count: without `require_stable` (read_uncommitted) the broker
/// answers with the last committed offsets instead of waiting for the transaction to end.
async fn committed_inputs(scenario: &Scenario) -> i64 {
    let (group, input) = (scenario.app.clone(), scenario.input.clone());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = stack()
            .kafka_settings()
            .client_config()
            .set("group.id", &group)
            .set("isolation.level", "read_uncommitted")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut partitions = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            partitions.add_partition(&input, p);
        }
        consumer
            .committed_offsets(partitions, Duration::from_secs(10))
            .unwrap()
            .elements()
            .iter()
            .filter_map(|tp| match tp.offset() {
                Offset::Offset(n) => Some(n),
                _ => None,
            })
            .sum()
    })
    .await
    .unwrap()
}

/// Starts a worker, waits until it has committed `progress` more inputs, SIGKILLs it and
/// checks that the kill interrupted a stream in progress: the worker had partitions and did
/// work (progress since the previous kill), and the stream was not complete when it died.
/// Replaces kills after fixed sleeps, which could land before a worker got partitions or
/// after the stream had ended and prove nothing. Returns the inputs committed after the kill.
async fn kill_mid_stream(
    scenario: &Scenario,
    extra: &[(&str, &str)],
    progress: i64,
    total: usize,
) -> i64 {
    let before = committed_inputs(scenario).await;
    let worker = scenario.worker("w1", extra);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = committed_inputs(scenario).await;
        if now >= before + progress {
            break;
        }
        if Instant::now() > deadline {
            worker.kill();
            panic!(
                "the worker committed {} inputs in 60 s, not {progress}",
                now - before
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    worker.kill();
    let after = committed_inputs(scenario).await;
    assert!(
        after < total as i64,
        "the kill came after all {total} inputs were committed ({after}): it interrupted nothing"
    );
    after
}

/// One input: account key, input id, amount.
type Input = (String, u32, i64);

fn inputs(count: u32, keys: u32) -> Vec<Input> {
    (0..count)
        .map(|i| (format!("acct-{}", i % keys), i, i64::from(i % 7) + 1))
        .collect()
}

async fn produce(topic: &str, inputs: &[Input], pace: Option<Duration>) {
    let producer: FutureProducer = stack()
        .kafka_settings()
        .idempotent_producer()
        .create()
        .unwrap();
    for (key, id, amount) in inputs {
        let value = format!("{id}:{amount}");
        producer
            .send(
                FutureRecord::to(topic).key(key).payload(&value),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
        if let Some(pace) = pace {
            tokio::time::sleep(pace).await;
        }
    }
}

impl Read {
    fn text(&self) -> String {
        String::from_utf8_lossy(self.value.as_deref().unwrap_or_default()).into_owned()
    }
}

#[derive(Debug, Clone)]
struct Read {
    partition: i32,
    offset: i64,
    key: String,
    value: Option<Vec<u8>>,
    headers: HashMap<String, String>,
}

/// Every committed record of a topic, in (partition, offset) order.
fn read_committed(topic: &str) -> Vec<Read> {
    let consumer: BaseConsumer = stack()
        .kafka_settings()
        .client_config()
        .set("group.id", unique("verify"))
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for p in metadata.topics()[0].partitions() {
        let (_, high) = consumer
            .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
            .unwrap();
        assignment
            .add_partition_offset(topic, p.id(), Offset::Beginning)
            .unwrap();
        ends.insert(p.id(), high);
    }
    consumer.assign(&assignment).unwrap();
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => records.push(Read {
                partition: m.partition(),
                offset: m.offset(),
                key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                value: m.payload().map(<[u8]>::to_vec),
                headers: m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                (
                                    h.key.to_owned(),
                                    String::from_utf8_lossy(h.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            }),
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {
                let position = consumer.position().unwrap();
                let done = ends.iter().all(|(p, high)| {
                    position
                        .find_partition(topic, *p)
                        .and_then(|tp| tp.offset().to_raw())
                        .is_some_and(|pos| pos >= *high)
                        || *high == 0
                });
                if done {
                    break;
                }
                assert!(Instant::now() < deadline, "reading {topic} timed out");
            }
        }
    }
    records.sort_by_key(|r| (r.partition, r.offset));
    records
}

/// Waits until the output holds an output for every input id (or more: the check after says).
async fn wait_for_outputs(topic: &str, count: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let topic = topic.to_owned();
        let seen = tokio::task::spawn_blocking(move || read_committed(&topic).len())
            .await
            .unwrap();
        if seen >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {seen} of {count} outputs after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Per key, the outputs must be the running sums of the inputs, in input order, each input
/// exactly once; the changelog's last value per key must be the final sum.
async fn assert_exactly_once(scenario: &Scenario, inputs: &[Input]) {
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut totals: BTreeMap<String, i64> = BTreeMap::new();
    for (key, id, amount) in inputs {
        let total = totals.entry(key.clone()).or_default();
        *total += amount;
        expected
            .entry(key.clone())
            .or_default()
            .push(format!("{id}:{total}"));
    }
    let (output, changelog) = (scenario.output.clone(), scenario.changelog());
    let (outputs, changelog) =
        tokio::task::spawn_blocking(move || (read_committed(&output), read_committed(&changelog)))
            .await
            .unwrap();
    let mut actual: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for record in outputs {
        actual
            .entry(record.key.clone())
            .or_default()
            .push(record.text());
    }
    for (key, want) in &expected {
        let got = actual.get(key).cloned().unwrap_or_default();
        assert_eq!(
            got.len(),
            want.len(),
            "{key}: {} outputs for {} inputs",
            got.len(),
            want.len()
        );
        assert_eq!(
            &got, want,
            "{key}: outputs are not the running sums of its inputs"
        );
    }
    assert_eq!(
        actual.len(),
        expected.len(),
        "outputs for keys that had no input"
    );

    let mut final_state: BTreeMap<String, i64> = BTreeMap::new();
    for record in changelog {
        let value = record.value.expect("totals are never deleted");
        let bytes: [u8; 8] = value
            .as_slice()
            .try_into()
            .unwrap_or_else(|_| panic!("changelog value for {} is not 8 bytes", record.key));
        final_state.insert(record.key, i64::from_be_bytes(bytes));
    }
    assert_eq!(
        final_state, totals,
        "the changelog's final state differs from the sums"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_input_is_applied_exactly_once_across_kills_and_crashes_during_commit() {
    let scenario = Scenario::new("crash").await;
    // Keys spread over all partitions. With 2 ms per record the stream takes about 8 s of
    // processing, so every kill and failpoint below lands mid-stream.
    let inputs = inputs(4000, 12);
    produce(&scenario.input, &inputs, None).await;
    let slow = [("DELAY_MS", "2")];

    // SIGKILL at several points while the stream is being processed, each after the worker
    // made progress and before the stream is complete (checked).
    for progress in [400, 1200, 600] {
        kill_mid_stream(&scenario, &slow, progress, inputs.len()).await;
    }
    // Crashes inside the commit: before it, between it and the RocksDB write, after the write.
    for failpoint in ["before-commit:3", "after-commit:2", "after-apply:4"] {
        let worker = scenario.worker("w1", &[("DELAY_MS", "2"), ("TCOM_FAILPOINT", failpoint)]);
        worker.wait_for_crash(failpoint, Duration::from_secs(60));
    }
    let before_final_run = {
        let output = scenario.output.clone();
        tokio::task::spawn_blocking(move || read_committed(&output).len())
            .await
            .unwrap()
    };
    let worker = scenario.worker("w1", &[]);
    wait_for_outputs(&scenario.output, inputs.len(), Duration::from_secs(90)).await;
    let metrics = worker.terminate();
    assert!(
        before_final_run > 0 && metrics["records"].as_u64().unwrap() > 0,
        "the crashes should have interrupted a stream in progress ({before_final_run} outputs before the final run, {metrics})"
    );

    assert_exactly_once(&scenario, &inputs).await;
}

/// RocksDB runs without a write-ahead log, so what survives a SIGKILL is whatever memtables
/// were flushed. With tiny memtables the stores flush many times mid-stream; the offsets
/// family must never reach disk ahead of the data it describes (atomic flush), or the restart
/// would skip replaying writes that were lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_while_the_state_flushes_often_lose_and_double_nothing() {
    let scenario = Scenario::new("flushes").await;
    // 50 "early" accounts written only in the first 500 inputs, then 3,500 inputs on other
    // accounts. A big memtable for the data, a small one for the offsets and one commit per
    // record: the offsets family fills and flushes (around a thousand commits) long after the
    // early accounts' last write, while the data family never fills. Without atomic flush the
    // kill then loses the early accounts' state although the offsets on disk say it was
    // applied, and no later changelog record repairs them: their next inputs show it.
    // Caveat (2026-12-01): this also passed with `atomic_flush` turned off, so it does not yet
    // show the skew it was designed to provoke; see TESTING.md.
    let mut inputs: Vec<Input> = (0..500u32)
        .map(|i| (format!("early-{}", i % 50), i, i64::from(i % 7) + 1))
        .chain((500..4000u32).map(|i| (format!("late-{}", i % 50), i, i64::from(i % 5) + 1)))
        .collect();
    produce(&scenario.input, &inputs, None).await;
    let flushing = [
        ("WRITE_BUFFER_BYTES", "67108864"),
        ("OFFSETS_WRITE_BUFFER_BYTES", "65536"),
        ("COMMIT_MAX_RECORDS", "1"),
    ];
    kill_mid_stream(&scenario, &flushing, 3000, inputs.len()).await;
    let worker = scenario.worker("w1", &[]);
    wait_for_outputs(&scenario.output, inputs.len(), Duration::from_secs(90)).await;
    // One more input per early account, after the restart.
    let again: Vec<Input> = (0..50u32)
        .map(|i| (format!("early-{i}"), 4000 + i, 1))
        .collect();
    produce(&scenario.input, &again, None).await;
    inputs.extend(again);
    wait_for_outputs(&scenario.output, inputs.len(), Duration::from_secs(60)).await;
    worker.terminate();
    assert_exactly_once(&scenario, &inputs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_joining_and_leaving_mid_stream_changes_nothing() {
    let scenario = Scenario::new("rebalance").await;
    let inputs = inputs(1500, 16);
    let producer = {
        let (topic, inputs) = (scenario.input.clone(), inputs.clone());
        tokio::spawn(async move { produce(&topic, &inputs, Some(Duration::from_millis(6))).await })
    };
    let first = scenario.worker("a", &[]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let second = scenario.worker("b", &[]);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let second_metrics = second.terminate();
    producer.await.unwrap();
    wait_for_outputs(&scenario.output, inputs.len(), Duration::from_secs(90)).await;
    first.terminate();

    assert!(
        second_metrics["records"].as_u64().unwrap() > 0,
        "the second instance never got partitions, so the test proved nothing: {second_metrics}"
    );
    assert_exactly_once(&scenario, &inputs).await;
}

fn dump_state(dir: &Path, app: &str) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut all = BTreeMap::new();
    for entry in std::fs::read_dir(dir.join(app)).unwrap() {
        let path = entry.unwrap().path();
        for (k, v) in tcom_state::store::dump_store(&path, "totals").unwrap() {
            assert!(all.insert(k, v).is_none(), "a key in two tasks");
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_state_folder_is_restored_from_the_changelog() {
    let scenario = Scenario::new("restore").await;
    let all = inputs(1000, 40);
    let (inputs, later) = all.split_at(800);
    produce(&scenario.input, inputs, None).await;
    let worker = scenario.worker("w1", &[]);
    wait_for_outputs(&scenario.output, inputs.len(), Duration::from_secs(60)).await;
    worker.terminate();
    let before = dump_state(&scenario.state_dir("w1"), &scenario.app);
    assert_eq!(before.len(), 40);

    std::fs::remove_dir_all(scenario.state_dir("w1")).unwrap();
    let worker = scenario.worker("w1", &[]);
    // Restoring happens on assignment; give the group time to assign.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let metrics = worker.terminate();
    assert!(
        metrics["restored_records"].as_u64().unwrap() >= 40,
        "{metrics}"
    );
    assert_eq!(dump_state(&scenario.state_dir("w1"), &scenario.app), before);
    assert_exactly_once(&scenario, inputs).await;

    // And processing continues from the restored state: inputs produced only now, for the
    // same 40 keys, must continue each key's running sum from its restored total.
    let worker = scenario.worker("w1", &[]);
    produce(&scenario.input, later, None).await;
    wait_for_outputs(&scenario.output, all.len(), Duration::from_secs(60)).await;
    let metrics = worker.terminate();
    assert_eq!(
        metrics["records"].as_u64(),
        Some(later.len() as u64),
        "only the new inputs are processed: {metrics}"
    );
    assert_exactly_once(&scenario, &all).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_record_is_dead_lettered_and_the_partition_moves_on() {
    let scenario = Scenario::new("poison").await;
    let producer: FutureProducer = stack()
        .kafka_settings()
        .idempotent_producer()
        .create()
        .unwrap();
    for value in ["1:5", "poison", "flaky-2:7", "stuck-3:1", "4:1", "slow-5:2"] {
        producer
            .send(
                FutureRecord::to(&scenario.input).key("acct").payload(value),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
    let started = Instant::now();
    let worker = scenario.worker("w1", &[("GIVE_UP_MS", "1500")]);
    wait_for_outputs(&scenario.output, 4, Duration::from_secs(60)).await;
    let metrics = worker.terminate();
    // The poison record at once; the stuck one only after it kept failing for GIVE_UP_MS
    // (the loop paused and tried again meanwhile), not after its in-place attempts.
    assert_eq!(metrics["dead_letters"], 2, "{metrics}");
    assert!(started.elapsed() >= Duration::from_millis(1500));
    assert!(metrics["retry_pauses"].as_u64().unwrap() >= 2, "{metrics}");

    let (output, dlq) = (scenario.output.clone(), format!("{}.dlq", scenario.input));
    let (outputs, dead) =
        tokio::task::spawn_blocking(move || (read_committed(&output), read_committed(&dlq)))
            .await
            .unwrap();
    let values: Vec<_> = outputs.iter().map(Read::text).collect();
    assert_eq!(
        values,
        vec!["1:5", "flaky-2:12", "4:13", "slow-5:15"],
        "records after the bad ones were processed, and the one that failed for a second was \
         retried until it went through instead of being dead-lettered"
    );
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[1].text(), "stuck-3:1");
    assert!(
        dead[1].headers["dlq.error"].contains("not available")
            && dead[1].headers["dlq.error"].contains("still failing"),
        "{:?}",
        dead[1].headers
    );
    let dead = &dead[0];
    assert_eq!(dead.text(), "poison");
    assert_eq!(dead.headers["dlq.topic"], scenario.input);
    assert_eq!(dead.headers["dlq.offset"], "1");
    assert!(
        dead.headers["dlq.error"].contains("malformed"),
        "{:?}",
        dead.headers
    );
}

/// Sends commands for the key `acct` (one partition): `(command id, "<input id>:<amount>")`,
/// each with a `reply-to`.
async fn produce_commands(topic: &str, commands: &[(&str, &str)]) {
    use rdkafka::message::{Header, OwnedHeaders};
    let producer: FutureProducer = stack()
        .kafka_settings()
        .idempotent_producer()
        .create()
        .unwrap();
    for (id, value) in commands {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: tcom_state::runtime::COMMAND_ID_HEADER,
                value: Some(*id),
            })
            .insert(Header {
                key: tcom_state::reply::REPLY_TO_HEADER,
                value: Some("ingress-a"),
            });
        producer
            .send(
                FutureRecord::to(topic)
                    .key("acct")
                    .payload(*value)
                    .headers(headers),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
}

/// The reply log's lines, once it has `count` of them (`eos_worker` writes `REPLY_LOG`):
/// `(command id, inputs committed when published, body)`.
async fn replies(log: &Path, count: usize) -> Vec<(String, i64, String)> {
    let parse = || -> Vec<(String, i64, String)> {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .map(|line| {
                let mut parts = line.splitn(4, ' ');
                let (reply_to, id, committed, body) = (
                    parts.next().unwrap(),
                    parts.next().unwrap(),
                    parts.next().unwrap(),
                    parts.next().unwrap(),
                );
                assert_eq!(reply_to, "ingress-a");
                (id.to_owned(), committed.parse().unwrap(), body.to_owned())
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while parse().len() < count && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lines = parse();
    assert_eq!(lines.len(), count, "replies: {lines:?}");
    lines
}

/// Replies are published only after the transaction that decided them committed: a crash
/// before the commit publishes none, the retry after the restart publishes them once its
/// transaction committed. And a command retried after the worker was SIGKILLed and restarted
/// gets its first answer, not a second decision. Shown to fail by moving `sink.publish` in
/// the runtime's `commit` before `try_commit`: "a reply was published for a command whose
/// transaction never committed"; and by making the command-id lookup ignore the committed
/// store (`None => Ok(None)` instead of `task.db.get`): c1's retry was answered `1:113`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_follow_the_commit_and_a_retry_after_a_restart_gets_the_first_answer() {
    let scenario = Scenario::new("replies").await;
    std::fs::create_dir_all(&scenario.root).unwrap();
    let log = scenario.root.join("replies.log");
    let log_var = log.to_str().unwrap().to_owned();
    produce_commands(
        &scenario.input,
        &[("c1", "1:5"), ("c2", "2:7"), ("c3", "3:1")],
    )
    .await;

    // The first transaction is decided and its replies are waiting, but it never commits.
    let failpoint = "before-commit:1";
    scenario
        .worker(
            "w1",
            &[("REPLY_LOG", &log_var), ("TCOM_FAILPOINT", failpoint)],
        )
        .wait_for_crash(failpoint, Duration::from_secs(60));
    assert_eq!(committed_inputs(&scenario).await, 0, "nothing committed");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap_or_default(),
        "",
        "a reply was published for a command whose transaction never committed"
    );

    // The restarted worker decides again; each reply is published with its input committed
    // (c1, c2, c3 are offsets 0, 1, 2 of one partition).
    let worker = scenario.worker("w1", &[("REPLY_LOG", &log_var)]);
    let first = replies(&log, 3).await;
    let expected = [("c1", "1:5"), ("c2", "2:12"), ("c3", "3:13")];
    for (offset, ((id, committed, body), (want_id, want_body))) in
        first.iter().zip(expected).enumerate()
    {
        assert_eq!(
            (id.as_str(), body.as_str()),
            (want_id, format!("processed:{want_body}").as_str())
        );
        assert!(
            *committed > offset as i64,
            "{id}'s reply was published when {committed} inputs were committed"
        );
    }
    worker.kill();

    // After a SIGKILL and a restart: c1 again (a client retrying, with another amount that
    // must not be added) and a new command c4.
    produce_commands(&scenario.input, &[("c1", "1:100"), ("c4", "4:2")]).await;
    let worker = scenario.worker("w1", &[("REPLY_LOG", &log_var)]);
    let all = replies(&log, 5).await;
    let metrics = worker.terminate();
    let later: Vec<(&str, &str)> = all[3..]
        .iter()
        .map(|(id, _, body)| (id.as_str(), body.as_str()))
        .collect();
    assert_eq!(
        later,
        [("c1", "processed:1:5"), ("c4", "processed:4:15")],
        "the retried c1 gets its first answer and is not applied again"
    );
    assert_eq!(metrics["duplicates"], 1, "{metrics}");
    let output = scenario.output.clone();
    let outputs: Vec<String> = tokio::task::spawn_blocking(move || read_committed(&output))
        .await
        .unwrap()
        .iter()
        .map(Read::text)
        .collect();
    assert_eq!(
        outputs,
        ["1:5", "2:12", "3:13", "4:15"],
        "one output per command"
    );
}
