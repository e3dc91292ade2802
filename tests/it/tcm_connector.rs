//! The TCM connector on the real broker, against a TCM simulator of its own: commands on
//! `tcm.commands` become customers and subscriptions in TCM exactly once — through refusals,
//! lost answers and an outage behind the circuit breaker — their answers arrive on
//! `tcm.events`, and a record that cannot be decoded goes to the dead-letter topic while the
//! rest keeps flowing. (Wiring the order's activation step to it is the next step of the
//! fulfilment issue.)

use std::sync::Arc;
use std::time::Duration;

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
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
use tcom_tests::{stack, unique};

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
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    connector: tokio::task::JoinHandle<()>,
}

impl Harness {
    async fn start() -> Self {
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
        // The connector creates its topics; commands sent before it subscribed are read from
        // the start (a new group).
        tokio::time::sleep(Duration::from_millis(200)).await;
        Self {
            tcm,
            metrics,
            commands,
            events,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            codec,
            producer: kafka.idempotent_producer().create().unwrap(),
            stop: Some(stop_tx),
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
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), &mut self.connector)
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
