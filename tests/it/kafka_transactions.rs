//! The broker's transactions work as the exactly-once runtime needs: committed records reach
//! read_committed consumers, aborted ones never do.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use tcom_state::admin::{TopicSpec, ensure_topics};
use tcom_tests::{stack, unique};

fn read_all(topic: &str, isolation: &str, expected_at_least: usize) -> Vec<String> {
    let consumer: BaseConsumer = stack()
        .kafka_settings()
        .client_config()
        .set("group.id", unique("reader"))
        .set("isolation.level", isolation)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut values = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    // Read until the expected count and then a quiet second, so extra records would show.
    let mut quiet_since = None;
    while std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                values.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
                quiet_since = None;
            }
            Some(Err(e)) => panic!("consume failed: {e}"),
            None if values.len() >= expected_at_least => {
                let since = *quiet_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() > Duration::from_secs(1) {
                    break;
                }
            }
            None => {}
        }
    }
    values
}

#[tokio::test]
async fn read_committed_consumers_see_committed_records_and_never_aborted_ones() {
    let stack = stack();
    let topic = unique("eos");
    ensure_topics(&stack.kafka_settings(), &[TopicSpec::new(&topic, 3)])
        .await
        .unwrap();

    let topic_for_producer = topic.clone();
    tokio::task::spawn_blocking(move || {
        let producer: ThreadedProducer<DefaultProducerContext> = stack
            .kafka_settings()
            .transactional_producer(&unique("txn"))
            .create()
            .unwrap();
        let timeout = Duration::from_secs(20);
        producer.init_transactions(timeout).unwrap();
        let send = |value: &str| {
            producer
                .send(
                    BaseRecord::to(&topic_for_producer)
                        .key(value)
                        .payload(value),
                )
                .map_err(|(e, _)| e)
                .unwrap();
        };

        producer.begin_transaction().unwrap();
        for v in ["c1", "c2", "c3"] {
            send(v);
        }
        producer.commit_transaction(timeout).unwrap();

        producer.begin_transaction().unwrap();
        for v in ["a1", "a2"] {
            send(v);
        }
        producer.flush(timeout).unwrap();
        producer.abort_transaction(timeout).unwrap();

        producer.begin_transaction().unwrap();
        send("c4");
        producer.commit_transaction(timeout).unwrap();
    })
    .await
    .unwrap();

    let topic_for_readers = topic.clone();
    let (committed, uncommitted) = tokio::task::spawn_blocking(move || {
        (
            read_all(&topic_for_readers, "read_committed", 4),
            read_all(&topic_for_readers, "read_uncommitted", 6),
        )
    })
    .await
    .unwrap();

    // Counted, not collected into a set: a committed record delivered twice must show. Shown
    // to fail by sending "c2" twice in the first transaction: `{"c2": 2, …}`.
    let expected: BTreeMap<String, usize> =
        ["c1", "c2", "c3", "c4"].map(|v| (v.to_owned(), 1)).into();
    assert_eq!(
        occurrences(&committed),
        expected,
        "read_committed must see each committed record exactly once, and no other"
    );
    // The aborted records were really written: a read_uncommitted reader sees them. Without
    // this, a producer that silently dropped them would pass the test above.
    let uncommitted = occurrences(&uncommitted);
    assert!(
        uncommitted.get("a1") == Some(&1) && uncommitted.get("a2") == Some(&1),
        "{uncommitted:?}"
    );
}

fn occurrences(values: &[String]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for value in values {
        *counts.entry(value.clone()).or_default() += 1;
    }
    counts
}
