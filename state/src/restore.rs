//! Changelog restore: brings task stores up to the end of their changelog partitions, each
//! from the offset the store last recorded (from the beginning for a new or wiped folder).
//!
//! All the stores of an assignment are restored in one pass over one consumer assigned to all
//! their changelog partitions, so the fetches run in parallel instead of one partition after
//! another.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use rocksdb::WriteBatch;

use crate::client::KafkaSettings;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::store::TaskDb;

/// Records per RocksDB batch while restoring.
const BATCH: usize = 20_000;
/// A restore that makes no progress for this long has failed.
const STALL: Duration = Duration::from_secs(60);

/// One store of one task to restore.
pub(crate) struct Target<'a> {
    pub(crate) db: &'a TaskDb,
    pub(crate) store: usize,
    pub(crate) topic: String,
    pub(crate) partition: i32,
}

/// Progress of one changelog partition.
struct Replay<'a> {
    target: &'a Target<'a>,
    high: i64,
    next: i64,
    batch: WriteBatch,
    in_batch: usize,
}

impl Replay<'_> {
    fn flush(&mut self, metrics: &Metrics) -> Result<()> {
        let batch = std::mem::take(&mut self.batch);
        self.target
            .db
            .commit_restored(batch, self.target.store, self.next)?;
        Metrics::add(&metrics.restored_records, self.in_batch as u64);
        self.in_batch = 0;
        Ok(())
    }
}

/// Replays changelog partitions into task databases, with one reusable consumer.
pub(crate) struct Restorer {
    consumer: BaseConsumer,
}

impl Restorer {
    pub(crate) fn new(kafka: &KafkaSettings) -> Result<Self> {
        let consumer = kafka
            .client_config()
            .set("group.id", "tcom-restore")
            .set("enable.auto.commit", "false")
            // Only committed changelog records: an aborted transaction's writes never happened.
            .set("isolation.level", "read_committed")
            .set("fetch.max.bytes", "52428800")
            .set("max.partition.fetch.bytes", "10485760")
            .set("queued.min.messages", "200000")
            .set("fetch.wait.max.ms", "10")
            .create()?;
        Ok(Self { consumer })
    }

    /// Restores every target; returns the number of records replayed.
    ///
    /// # Errors
    /// A changelog cannot be read, or RocksDB cannot be written.
    pub(crate) fn restore(&self, targets: &[Target<'_>], metrics: &Metrics) -> Result<u64> {
        let mut active: Vec<Replay<'_>> = Vec::new();
        let mut assignment = TopicPartitionList::new();
        for target in targets {
            let (low, high) = self.consumer.fetch_watermarks(
                &target.topic,
                target.partition,
                Duration::from_secs(10),
            )?;
            let from = target
                .db
                .changelog_offset(target.store)?
                .unwrap_or(0)
                .max(low);
            if from >= high {
                continue;
            }
            assignment.add_partition_offset(
                &target.topic,
                target.partition,
                Offset::Offset(from),
            )?;
            active.push(Replay {
                target,
                high,
                next: from,
                batch: WriteBatch::default(),
                in_batch: 0,
            });
        }
        if active.is_empty() {
            return Ok(0);
        }
        self.consumer.assign(&assignment)?;
        let result = self.replay(&mut active, metrics);
        self.consumer.unassign()?;
        result
    }

    fn replay(&self, active: &mut Vec<Replay<'_>>, metrics: &Metrics) -> Result<u64> {
        let mut restored = 0u64;
        let mut progress = Instant::now();
        while !active.is_empty() {
            match self.consumer.poll(Duration::from_millis(100)) {
                Some(Ok(message)) => {
                    // A handful of partitions per assignment: a linear search beats hashing.
                    let Some(index) = active.iter().position(|r| {
                        r.target.partition == message.partition()
                            && r.target.topic == message.topic()
                    }) else {
                        continue;
                    };
                    let replay = &mut active[index];
                    let target = replay.target;
                    target.db.restore_into(
                        &mut replay.batch,
                        target.store,
                        message.key().unwrap_or_default(),
                        message.payload(),
                    );
                    replay.in_batch += 1;
                    replay.next = message.offset() + 1;
                    restored += 1;
                    progress = Instant::now();
                    if replay.in_batch >= BATCH || replay.next >= replay.high {
                        replay.flush(metrics)?;
                    }
                    if replay.next >= replay.high {
                        active.swap_remove(index);
                    }
                }
                Some(Err(e)) => return Err(e.into()),
                None => {
                    // A transaction marker may be a partition's last record; it is never
                    // delivered, but the position moves past it.
                    let position = self.consumer.position()?;
                    let mut index = 0;
                    while index < active.len() {
                        let replay = &mut active[index];
                        let at = position
                            .find_partition(&replay.target.topic, replay.target.partition)
                            .and_then(|tp| tp.offset().to_raw())
                            .unwrap_or(replay.next);
                        if at >= replay.high {
                            replay.next = replay.next.max(at);
                            replay.flush(metrics)?;
                            active.swap_remove(index);
                        } else {
                            index += 1;
                        }
                    }
                    if let Some(replay) = active.first()
                        && progress.elapsed() > STALL
                    {
                        return Err(Error::Topic {
                            topic: replay.target.topic.clone(),
                            message: format!(
                                "restore of partition {} stalled at offset {} of {}",
                                replay.target.partition, replay.next, replay.high
                            ),
                        });
                    }
                }
            }
        }
        Ok(restored)
    }
}
