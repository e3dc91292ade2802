//! The TCM connector on the real broker, against a TCM simulator of its own: commands on
//! `tcm.commands` become customers and subscriptions in TCM exactly once — through refusals,
//! lost answers and an outage behind the circuit breaker — their answers arrive on
//! `tcm.events`, and a record that cannot be decoded goes to the dead-letter topic while the
//! rest keeps flowing; fifty commands wait out a minute of TCM outage behind the breaker and
//! each becomes one subscription afterwards; and the connector, run as a child process and
//! SIGKILLed again and again in the middle of its calls, creates nothing twice and drops no
//! command. (The order's side of activation is covered in `fulfilment`.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use tcom_connectors::circuit_breaker::BreakerSettings;
use tcom_connectors::tcm::client::TcmClient;
use tcom_connectors::tcm::connector::{TcmOptions, TcmSetup};
use tcom_connectors::tcm::tcm_sim;
use tcom_schemas::Codec;
use tcom_schemas::tcm::{
    ActivateSubscription, TcmCommand, TcmCommandPayload, TcmEvent, TcmEventPayload,
};
use tcom_tests::{eventually, stack, unique};

/// A TCM simulator and a connector of this test's own (its own consumer group, from the
/// topic's end).
struct Harness {
    tcm: String,
    metrics: Arc<tcom_connectors::dead_letter::ConnectorMetrics>,
    /// This test's own command and event topics: the platform's TCM connector takes every
    /// command of the platform's topic.
    commands: String,
    events: String,
    http: reqwest::Client,
    codec: Arc<Codec>,
    producer: FutureProducer,
    /// The in-process connector: how to stop it, and its task.
    connector: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
}

impl Harness {
    async fn start() -> Self {
        Self::open(true).await
    }

    /// The simulator and the topics, for a connector run elsewhere (a child process).
    async fn without_connector() -> Self {
        Self::open(false).await
    }

    async fn open(in_process: bool) -> Self {
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(tcm_sim::serve(
            "127.0.0.1:0".parse().unwrap(),
            std::future::pending(),
            move |address| {
                let _ = tx.send(address);
            },
        ));
        let tcm = format!("http://{}", rx.await.unwrap());
        let kafka = stack().kafka_settings();
        let codec = Arc::new(Codec::new(&stack().registry_url).unwrap());
        codec
            .register_all(&tcom_schemas::contract::all())
            .await
            .unwrap();
        let group = unique("test-tcm");
        let metrics = Arc::new(tcom_connectors::dead_letter::ConnectorMetrics::default());
        let commands = unique("test.tcm.commands");
        let events = unique("test.tcm.events");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let setup = TcmSetup {
            client: TcmClient::new(&tcm, Duration::from_secs(2)),
            keys: None,
            options: TcmOptions {
                breaker: BreakerSettings {
                    failure_threshold: 2,
                    open_for: Duration::from_millis(300),
                    close_after: 1,
                },
                max_backoff: Duration::from_millis(200),
                commands_topic: commands.clone(),
                events_topic: events.clone(),
            },
            metrics: metrics.clone(),
        };
        let connector = if in_process {
            let running = tcom_connectors::tcm::connector::run(
                kafka.clone(),
                group,
                codec.clone(),
                setup,
                async move {
                    let _ = stop_rx.await;
                },
            );
            let connector = tokio::spawn(async move {
                running.await.expect("the TCM connector runs");
            });
            // The connector creates its topics; commands sent before it subscribed are read
            // from the start (a new group).
            tokio::time::sleep(Duration::from_millis(200)).await;
            Some((stop_tx, connector))
        } else {
            // The connector will be started later: the topics must take commands now.
            tcom_state::admin::ensure_topics(
                &kafka,
                &[
                    tcom_state::admin::TopicSpec::new(&commands, 6),
                    tcom_state::admin::TopicSpec::new(&events, 6),
                ],
            )
            .await
            .unwrap();
            None
        };
        Self {
            tcm,
            metrics,
            commands,
            events,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            codec,
            producer: kafka.idempotent_producer().create().unwrap(),
            connector,
        }
    }

    async fn faults(&self, faults: Value) {
        let r = self
            .http
            .post(format!("{}/_sim/faults", self.tcm))
            .json(&faults)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }

    async fn ledger(&self) -> Value {
        self.http
            .get(format!("{}/_sim/ledger", self.tcm))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn send(&self, order: &str, item: &str, msisdn: &str) {
        let command = TcmCommand {
            command_id: format!("{order}:{item}:activate"),
            tenant_id: "nordlys".into(),
            order_id: order.into(),
            issued_at: 0,
            payload: TcmCommandPayload::ActivateSubscription(ActivateSubscription {
                item_id: item.into(),
                customer_id: format!("cus-{order}"),
                plan_code: "fri-5g".into(),
                msisdn: msisdn.into(),
                sim_type: "ESIM".into(),
                iccid: None,
                binding_end_date: None,
                shared_data_sims: vec![],
                owner_name_sealed: None,
            }),
        };
        let bytes = self.codec.encode(&command).await.unwrap();
        self.raw(order, &bytes).await;
    }

    async fn raw(&self, order: &str, bytes: &[u8]) {
        let key = format!("nordlys:{order}");
        self.producer
            .send(
                FutureRecord::to(&self.commands).key(&key).payload(bytes),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }

    async fn stop(mut self) {
        let (stop, connector) = self.connector.take().expect("an in-process connector");
        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(10), connector)
            .await
            .expect("the connector stops")
            .unwrap();
    }
}

/// The `tcm.events` of `order` until `count` arrived (or 20 s passed), in order.
async fn events_of(topic: &str, order: &str, count: usize) -> Vec<TcmEventPayload> {
    let (topic, order) = (topic.to_owned(), order.to_owned());
    let records = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = stack()
            .kafka_settings()
            .read_committed_consumer(&unique("tcm-events-reader"))
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
        consumer.subscribe(&[topic.as_str()]).unwrap();
        let key = format!("nordlys:{order}");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut found = Vec::new();
        while found.len() < count && std::time::Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100))
                && m.key() == Some(key.as_bytes())
            {
                found.push(m.payload().unwrap_or_default().to_vec());
            }
        }
        found
    })
    .await
    .unwrap();
    let codec = Codec::new(&stack().registry_url).unwrap();
    let mut events = Vec::new();
    for bytes in records {
        let event: TcmEvent = codec.decode(&bytes).await.unwrap();
        events.push(event.payload);
    }
    events
}

fn activated(event: &TcmEventPayload) -> Option<&str> {
    match event {
        TcmEventPayload::SubscriptionActivated(a) => Some(a.subscription_id.as_str()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_become_subscriptions_once_through_refusals_lost_answers_and_an_outage() {
    // One test, one connector: every connector of the topic would take every command.
    let h = Harness::start().await;
    let order = unique("tcm-order");
    h.send(&order, "l1", "+4520000101").await;
    // The same number for another item: TCM refuses it (already active).
    h.send(&order, "l2", "+4520000101").await;
    let events = events_of(&h.events, &order, 2).await;
    assert_eq!(events.len(), 2, "{events:?}");
    let subscription = activated(&events[0]).expect("l1 activated").to_owned();
    match &events[1] {
        TcmEventPayload::ActivationRefused(r) => {
            assert_eq!((r.item_id.as_str(), r.code.as_str()), ("l2", "TCM-4091"));
        }
        other => panic!("{other:?}"),
    }
    // An answer lost on the way back: the connector sends again with the same request id.
    h.faults(json!({"lose_response_next": 1})).await;
    let lossy = unique("tcm-order");
    h.send(&lossy, "l1", "+4520000102").await;
    // (The lost answer looks like an outage at first: the order hears of the delay.)
    let events = events_of(&h.events, &lossy, 2).await;
    assert!(
        matches!(events[0], TcmEventPayload::ActivationDelayed(_)),
        "{events:?}"
    );
    let again = activated(&events[1]).expect("activated after the lost answer");
    let ledger = h.ledger().await;
    let subscriptions = ledger["subscriptions"].as_array().unwrap();
    assert_eq!(subscriptions.len(), 2, "{ledger}");
    assert!(
        subscriptions
            .iter()
            .any(|s| s["subscriptionId"] == subscription.as_str())
    );
    assert!(subscriptions.iter().any(|s| s["subscriptionId"] == again));
    let requests = ledger["requests"].as_object().unwrap();
    let resent: Vec<&String> = requests
        .iter()
        .filter(|(id, r)| id.contains(&lossy) && r["seen"].as_u64().unwrap() >= 2)
        .map(|(id, _)| id)
        .collect();
    assert_eq!(resent.len(), 1, "the lost create was sent again: {ledger}");
    // One TCM customer per platform customer, though two items (and a resend) asked.
    let customers = ledger["customers"].as_array().unwrap();
    for platform_customer in [format!("cus-{order}"), format!("cus-{lossy}")] {
        let count = customers
            .iter()
            .filter(|c| c["externalRef"] == platform_customer.as_str())
            .count();
        assert_eq!(count, 1, "{platform_customer}: {ledger}");
    }

    // An outage: the command waits behind the breaker, the order is told once, and the
    // subscription is created when TCM is back.
    let before = h.ledger().await["subscriptions"].as_array().unwrap().len();
    h.faults(json!({"outage": true})).await;
    let order = unique("tcm-order");
    h.send(&order, "l1", "+4520000201").await;
    let delayed = events_of(&h.events, &order, 1).await;
    match &delayed[0] {
        TcmEventPayload::ActivationDelayed(d) => {
            assert!(d.reason.contains("TCM unavailable"), "{d:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        h.ledger().await["subscriptions"].as_array().unwrap().len(),
        before,
        "nothing created during the outage"
    );
    // Failures in a row opened the breaker: the operator sees it (open or probing).
    tokio::time::sleep(Duration::from_millis(600)).await;
    let rendered = h.metrics.render_prometheus("tcm");
    assert!(
        rendered.contains("tcom_connector_breaker_state{connector=\"tcm\"} 1")
            || rendered.contains("tcom_connector_breaker_state{connector=\"tcm\"} 2"),
        "{rendered}"
    );
    assert!(
        rendered.contains("tcom_connector_stalled{connector=\"tcm\"} 1"),
        "{rendered}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    h.faults(json!({"outage": false})).await;
    let events = events_of(&h.events, &order, 2).await;
    assert!(activated(&events[1]).is_some(), "{events:?}");
    let rendered = h.metrics.render_prometheus("tcm");
    assert!(
        rendered.contains("tcom_connector_breaker_state{connector=\"tcm\"} 0"),
        "closed again: {rendered}"
    );
    assert_eq!(events.len(), 2, "said delayed once: {events:?}");

    // A record that is no command: dead-lettered, and the next command still goes through.
    let garbage = unique("tcm-order");
    h.raw(&garbage, b"not avro").await;
    let after = unique("tcm-order");
    h.send(&after, "l1", "+4520000202").await;
    assert!(activated(&events_of(&h.events, &after, 1).await[0]).is_some());
    let dlq = tcom_state::runtime::dead_letter_topic(&h.commands);
    let key = format!("nordlys:{garbage}");
    let found = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = stack()
            .kafka_settings()
            .read_committed_consumer(&unique("tcm-dlq-reader"))
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
        consumer.subscribe(&[dlq.as_str()]).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100))
                && m.key() == Some(key.as_bytes())
            {
                use rdkafka::message::Headers;
                let headers = m.headers().expect("dlq headers");
                return (0..headers.count())
                    .map(|i| headers.get(i).key.to_owned())
                    .collect::<Vec<_>>();
            }
        }
        Vec::new()
    })
    .await
    .unwrap();
    assert!(found.contains(&"dlq.error".to_owned()), "{found:?}");
    h.stop().await;
}

/// Every answer on `topic` to `orders`, by order, read until each order has a
/// `SubscriptionActivated` (or `within` passed).
async fn answers_until_activated(
    topic: &str,
    orders: &[String],
    within: Duration,
) -> BTreeMap<String, Vec<TcmEventPayload>> {
    let consumer: StreamConsumer = stack()
        .kafka_settings()
        .read_committed_consumer(&unique("tcm-answers-reader"))
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let codec = Codec::new(&stack().registry_url).unwrap();
    let wanted: BTreeMap<String, &String> = orders
        .iter()
        .map(|order| (format!("nordlys:{order}"), order))
        .collect();
    let mut found: BTreeMap<String, Vec<TcmEventPayload>> = BTreeMap::new();
    let all_activated = |found: &BTreeMap<String, Vec<TcmEventPayload>>| {
        orders.iter().all(|order| {
            found
                .get(order)
                .is_some_and(|events| events.iter().any(|e| activated(e).is_some()))
        })
    };
    let deadline = Instant::now() + within;
    while !all_activated(&found) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let Ok(Ok(message)) =
            tokio::time::timeout(left.min(Duration::from_millis(500)), consumer.recv()).await
        else {
            continue;
        };
        let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
        if let Some(order) = wanted.get(&key) {
            let event: TcmEvent = codec
                .decode(message.payload().unwrap_or_default())
                .await
                .unwrap();
            found
                .entry((*order).clone())
                .or_default()
                .push(event.payload);
        }
    }
    found
}

/// The `tcom_connector_breaker_state` the harness' connector shows.
fn breaker_state(h: &Harness) -> String {
    let rendered = h.metrics.render_prometheus("tcm");
    rendered
        .lines()
        .find_map(|l| l.strip_prefix("tcom_connector_breaker_state{connector=\"tcm\"} "))
        .unwrap_or_default()
        .to_owned()
}

fn count(ledger: &Value, records: &str) -> usize {
    ledger[records].as_array().map_or(0, Vec::len)
}

/// What TCM saw of one request id: how many times, and what it created.
fn request(ledger: &Value, id: &str) -> (u64, Option<String>) {
    let log = &ledger["requests"][id];
    (
        log["seen"].as_u64().unwrap_or(0),
        log["created"].as_str().map(str::to_owned),
    )
}

/// Asserts that each order's command became exactly one subscription in TCM, the one every
/// `SubscriptionActivated` of the order names, and that none was refused.
fn assert_each_created_once(
    ledger: &Value,
    orders: &[String],
    answers: &BTreeMap<String, Vec<TcmEventPayload>>,
) {
    let subscriptions = ledger["subscriptions"].as_array().unwrap();
    assert_eq!(subscriptions.len(), orders.len(), "{ledger}");
    for order in orders {
        let made: Vec<&str> = subscriptions
            .iter()
            .filter(|s| s["externalRef"] == format!("{order}/l1").as_str())
            .map(|s| s["subscriptionId"].as_str().unwrap())
            .collect();
        assert_eq!(made.len(), 1, "{order}: {made:?}");
        let (_, created) = request(ledger, &format!("{order}:l1:activate:subscription"));
        assert_eq!(created.as_deref(), Some(made[0]), "{order}");
        let events = answers.get(order).cloned().unwrap_or_default();
        let named: BTreeSet<&str> = events.iter().filter_map(activated).collect();
        assert_eq!(
            named,
            BTreeSet::from([made[0]]),
            "{order} answered with its one subscription: {events:?}"
        );
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, TcmEventPayload::ActivationRefused(_))),
            "{order}: {events:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_commands_wait_out_a_minute_of_tcm_outage_and_each_becomes_one_subscription() {
    const COMMANDS: usize = 50;
    const OUTAGE: Duration = Duration::from_secs(60);
    let h = Harness::start().await;
    let batch = unique("tcm-outage");
    let orders: Vec<String> = (0..COMMANDS).map(|i| format!("{batch}-{i:02}")).collect();
    let number = |i: usize| format!("+4531{i:06}");
    // A few go through while TCM is up.
    for (i, order) in orders.iter().enumerate().take(5) {
        h.send(order, "l1", &number(i)).await;
    }
    let up = eventually(Duration::from_secs(30), || async {
        (count(&h.ledger().await, "subscriptions") == 5).then_some(())
    })
    .await;
    assert!(up.is_some(), "{}", h.ledger().await);

    // TCM goes down (the load balancer's maintenance page) while the rest arrive.
    h.faults(json!({"outage": true})).await;
    let down_at = Instant::now();
    for (i, order) in orders.iter().enumerate().skip(5) {
        h.send(order, "l1", &number(i)).await;
    }
    let opened = eventually(Duration::from_secs(20), || async {
        matches!(breaker_state(&h).as_str(), "1" | "2").then_some(())
    })
    .await;
    let rendered = h.metrics.render_prometheus("tcm");
    assert!(opened.is_some(), "the breaker opens: {rendered}");
    assert!(
        rendered.contains("tcom_connector_stalled{connector=\"tcm\"} 1"),
        "{rendered}"
    );
    // The outage lasts its minute (the scenario, not a wait for a condition).
    tokio::time::sleep(OUTAGE.saturating_sub(down_at.elapsed())).await;
    assert_eq!(
        count(&h.ledger().await, "subscriptions"),
        5,
        "nothing created while TCM was down"
    );
    assert!(
        matches!(breaker_state(&h).as_str(), "1" | "2"),
        "still open or probing after a minute: {}",
        h.metrics.render_prometheus("tcm")
    );

    h.faults(json!({"outage": false})).await;
    let answers = answers_until_activated(&h.events, &orders, Duration::from_secs(90)).await;
    let ledger = h.ledger().await;
    assert_each_created_once(&ledger, &orders, &answers);
    // The command that met the outage told its order once; no order heard it twice.
    let delayed: Vec<usize> = orders
        .iter()
        .map(|order| {
            answers[order]
                .iter()
                .filter(|e| matches!(e, TcmEventPayload::ActivationDelayed(_)))
                .count()
        })
        .collect();
    assert!(delayed.contains(&1), "{answers:?}");
    assert!(delayed.iter().all(|&n| n <= 1), "{delayed:?}");
    let rendered = h.metrics.render_prometheus("tcm");
    assert_eq!(breaker_state(&h), "0", "closed again: {rendered}");
    assert!(
        rendered.contains("tcom_connector_stalled{connector=\"tcm\"} 0"),
        "{rendered}"
    );
    h.stop().await;
}

/// The TCM connector alone in a `platform_worker` child process, logging to a file.
struct Worker {
    child: Child,
}

impl Worker {
    fn start(h: &Harness, group: &str, instance: &str, log: &Path) -> Self {
        let stack = stack();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_platform_worker"))
            .env("ROLE", "tcm")
            .env("KAFKA_BOOTSTRAP_SERVERS", &stack.kafka)
            .env("SCHEMA_REGISTRY_URL", &stack.registry_url)
            .env("TCM_URL", &h.tcm)
            .env("GROUP_ID", group)
            .env("INSTANCE_ID", instance)
            .env("COMMANDS_TOPIC", &h.commands)
            .env("EVENTS_TOPIC", &h.events)
            .env("RUST_LOG", "info,rdkafka=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("platform_worker starts");
        Self { child }
    }

    /// SIGKILL: no shutdown, no last commit, a call to TCM cut off wherever it is.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

fn tail(log: &PathBuf) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Polls the ledger (every 2 ms: a kill must follow what it waits for closely) until `done`.
async fn ledger_until(h: &Harness, within: Duration, done: impl Fn(&Value) -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if done(&h.ledger().await) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkills_of_the_connector_mid_call_create_no_subscription_twice_and_lose_no_command() {
    const COMMANDS: usize = 20;
    const KILLS: usize = 8;
    let h = Harness::without_connector().await;
    // Every TCM call takes 150 ms, so a call is in flight most of the time.
    h.faults(json!({"latency_ms": 150})).await;
    let batch = unique("tcm-kill");
    let orders: Vec<String> = (0..COMMANDS).map(|i| format!("{batch}-{i:02}")).collect();
    for (i, order) in orders.iter().enumerate() {
        h.send(order, "l1", &format!("+4532{i:06}")).await;
    }
    let group = unique("test-tcm-child");
    // A static member: each restart takes the dead one's partitions at once.
    let instance = unique("tcm-child");
    let log = std::env::temp_dir().join(format!("{group}.log"));
    for round in 0..KILLS {
        let ledger = h.ledger().await;
        let (customers, subscriptions) =
            (count(&ledger, "customers"), count(&ledger, "subscriptions"));
        let mut worker = Worker::start(&h, &group, &instance, &log);
        // Even rounds: TCM has just created a command's customer, so its subscription create
        // is in flight (in its 150 ms). Odd rounds: TCM has just created a subscription, so
        // its answer is on the way back or being recorded on tcm.events.
        let reached = ledger_until(&h, Duration::from_secs(60), |l| {
            if round % 2 == 0 {
                count(l, "customers") > customers
            } else {
                count(l, "subscriptions") > subscriptions
            }
        })
        .await;
        worker.kill();
        assert!(
            reached,
            "round {round}: no progress in 60 s; the connector's log:\n{}",
            tail(&log)
        );
    }
    // A last run, left alone: every command must be answered.
    let worker = Worker::start(&h, &group, &instance, &log);
    let answers = answers_until_activated(&h.events, &orders, Duration::from_secs(90)).await;
    drop(worker);
    let ledger = h.ledger().await;
    assert!(
        orders.iter().all(|o| answers.contains_key(o)),
        "every command answered; the connector's log:\n{}",
        tail(&log)
    );
    assert_each_created_once(&ledger, &orders, &answers);
    assert_eq!(
        count(&ledger, "customers"),
        COMMANDS,
        "one customer each: {ledger}"
    );
    // The kills landed where they were meant to. Between sending and recording: a create
    // TCM carried out was sent again after the restart (and found the first).
    let resent = orders
        .iter()
        .filter(|o| request(&ledger, &format!("{o}:l1:activate:subscription")).0 >= 2)
        .count();
    assert!(resent >= 1, "no create was sent again: {ledger}");
    // In flight: every send that runs its course asks TCM for the customer, then the
    // subscription; a send whose customer TCM saw more often than its subscription was cut
    // off between the two (the subscription's create never reached TCM).
    let cut_off = orders
        .iter()
        .filter(|o| {
            request(&ledger, &format!("customer:nordlys:cus-{o}")).0
                > request(&ledger, &format!("{o}:l1:activate:subscription")).0
        })
        .count();
    assert!(cut_off >= 1, "no kill cut a call off in flight: {ledger}");
}
