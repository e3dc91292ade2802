//! Global tables: compacted topics (tenants, catalog, campaigns) read whole by every instance
//! and kept up to date in memory. Processing starts only once every table has caught up with
//! the topic as it was at start, so a processor never decides on a stale catalog.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::client::KafkaSettings;
use crate::error::{Error, Result};

/// A global table to maintain: its name (as processors ask for it) and its topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalTableSpec {
    pub name: String,
    pub topic: String,
}

// Ordered, so a processor can read every entry of one tenant (keys `tenant:…`).
type Table = RwLock<BTreeMap<Vec<u8>, Arc<[u8]>>>;

/// The in-memory global tables of one runtime.
#[derive(Debug, Default)]
pub struct GlobalTables {
    tables: HashMap<String, Arc<Table>>,
}

impl GlobalTables {
    /// The value of a key in a table; `None` for unknown tables and keys.
    pub fn get(&self, table: &str, key: &[u8]) -> Option<Arc<[u8]>> {
        self.tables
            .get(table)?
            .read()
            .expect("table lock")
            .get(key)
            .cloned()
    }

    /// The entries whose keys start with `prefix`, in key order; empty for unknown tables.
    pub fn scan_prefix(&self, table: &str, prefix: &[u8]) -> Vec<(Vec<u8>, Arc<[u8]>)> {
        let Some(table) = self.tables.get(table) else {
            return Vec::new();
        };
        table
            .read()
            .expect("table lock")
            .range(prefix.to_vec()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect()
    }
}

/// Follows the global topics on a background thread.
#[derive(Debug)]
pub(crate) struct GlobalFollower {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for GlobalFollower {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads every table up to its current end, then keeps following in the background.
///
/// # Errors
/// A topic does not exist or cannot be read within `timeout`.
pub(crate) fn start(
    kafka: &KafkaSettings,
    specs: &[GlobalTableSpec],
    timeout: Duration,
) -> Result<(Arc<GlobalTables>, Option<GlobalFollower>)> {
    if specs.is_empty() {
        return Ok((Arc::new(GlobalTables::default()), None));
    }
    let consumer: BaseConsumer = kafka
        .client_config()
        .set("group.id", "tcom-global-tables")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()?;
    let mut tables = GlobalTables::default();
    let mut by_topic: HashMap<String, Arc<Table>> = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    let mut remaining: HashMap<(String, i32), i64> = HashMap::new();
    for spec in specs {
        let table: Arc<Table> = Arc::default();
        tables.tables.insert(spec.name.clone(), table.clone());
        by_topic.insert(spec.topic.clone(), table);
        let metadata = consumer.fetch_metadata(Some(&spec.topic), Duration::from_secs(10))?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions())
            .map(|p| p.id())
            .collect();
        if partitions.is_empty() {
            return Err(Error::Topic {
                topic: spec.topic.clone(),
                message: "global table topic does not exist".to_owned(),
            });
        }
        for p in partitions {
            let (low, high) = consumer.fetch_watermarks(&spec.topic, p, Duration::from_secs(10))?;
            assignment.add_partition_offset(&spec.topic, p, Offset::Beginning)?;
            if high > low {
                remaining.insert((spec.topic.clone(), p), high);
            }
        }
    }
    consumer.assign(&assignment)?;

    let apply = move |message: &rdkafka::message::BorrowedMessage<'_>| {
        if let (Some(table), Some(key)) = (by_topic.get(message.topic()), message.key()) {
            let mut table = table.write().expect("table lock");
            match message.payload() {
                Some(value) => table.insert(key.to_vec(), Arc::from(value)),
                None => table.remove(key),
            };
        }
    };

    let deadline = Instant::now() + timeout;
    while !remaining.is_empty() {
        if Instant::now() > deadline {
            return Err(Error::Topic {
                topic: remaining
                    .keys()
                    .next()
                    .map(|(t, _)| t.clone())
                    .unwrap_or_default(),
                message: format!("global table not caught up within {timeout:?}"),
            });
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                apply(&message);
                let key = (message.topic().to_owned(), message.partition());
                if remaining
                    .get(&key)
                    .is_some_and(|high| message.offset() + 1 >= *high)
                {
                    remaining.remove(&key);
                }
            }
            Some(Err(e)) => return Err(e.into()),
            None => {
                // Transaction markers at the end of a partition are never delivered: compare the
                // position instead.
                let position = consumer.position()?;
                remaining.retain(|(topic, p), high| {
                    position
                        .find_partition(topic, *p)
                        .and_then(|tp| tp.offset().to_raw())
                        .is_none_or(|pos| pos < *high)
                });
            }
        }
    }

    let stop = Arc::new(AtomicBool::new(false));
    let stop_flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name("global-tables".to_owned())
        .spawn(move || {
            while !stop_flag.load(Ordering::Acquire) {
                match consumer.poll(Duration::from_millis(100)) {
                    Some(Ok(message)) => apply(&message),
                    Some(Err(e)) => tracing::warn!(error = %e, "Global table consumer error."),
                    None => {}
                }
            }
        })
        .map_err(|e| Error::Store(format!("cannot start the global table thread: {e}")))?;
    Ok((
        Arc::new(tables),
        Some(GlobalFollower {
            stop,
            thread: Some(thread),
        }),
    ))
}
