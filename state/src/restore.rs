//! Changelog restore: brings a task's store up to the end of its changelog partition, starting
//! from the offset the store last recorded (from the beginning for a new or wiped folder).

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::client::KafkaSettings;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::store::TaskDb;

/// Records per RocksDB batch while restoring.
const BATCH: usize = 20_000;
/// A restore that makes no progress for this long has failed.
const STALL: Duration = Duration::from_secs(60);

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
            .create()?;
        Ok(Self { consumer })
    }

    /// Restores one store of one task; returns the number of records replayed.
    ///
    /// # Errors
    /// The changelog cannot be read, or RocksDB cannot be written.
    pub(crate) fn restore(
        &self,
        db: &TaskDb,
        store: usize,
        topic: &str,
        partition: i32,
        metrics: &Metrics,
    ) -> Result<u64> {
        let (low, high) =
            self.consumer
                .fetch_watermarks(topic, partition, Duration::from_secs(10))?;
        let from = db.changelog_offset(store)?.unwrap_or(0).max(low);
        if from >= high {
            return Ok(0);
        }
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(topic, partition, Offset::Offset(from))?;
        self.consumer.assign(&assignment)?;

        let mut batch: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::with_capacity(BATCH);
        let mut next = from;
        let mut restored = 0u64;
        let mut progress = Instant::now();
        let result = loop {
            match self.consumer.poll(Duration::from_millis(100)) {
                Some(Ok(message)) => {
                    let key = message.key().unwrap_or_default().to_vec();
                    batch.push((key, message.payload().map(<[u8]>::to_vec)));
                    next = message.offset() + 1;
                    progress = Instant::now();
                    if batch.len() >= BATCH {
                        restored += self.flush(db, store, &mut batch, next, metrics)?;
                    }
                    if next >= high {
                        break Ok(());
                    }
                }
                Some(Err(e)) => break Err(Error::from(e)),
                None => {
                    // A transaction marker may be the partition's last record; it is never
                    // delivered, but the position moves past it.
                    let position = self.consumer.position()?;
                    let at = position
                        .find_partition(topic, partition)
                        .and_then(|tp| tp.offset().to_raw())
                        .unwrap_or(next);
                    if at >= high {
                        next = next.max(at);
                        break Ok(());
                    }
                    if progress.elapsed() > STALL {
                        break Err(Error::Topic {
                            topic: topic.to_owned(),
                            message: format!(
                                "restore of partition {partition} stalled at offset {at} of {high}"
                            ),
                        });
                    }
                }
            }
        };
        self.consumer.unassign()?;
        result?;
        restored += self.flush(db, store, &mut batch, next, metrics)?;
        if batch.is_empty() && restored == 0 {
            // Only markers after the stored offset: remember how far we got.
            db.apply_restored(store, &[], next)?;
        }
        Ok(restored)
    }

    fn flush(
        &self,
        db: &TaskDb,
        store: usize,
        batch: &mut Vec<(Vec<u8>, Option<Vec<u8>>)>,
        next: i64,
        metrics: &Metrics,
    ) -> Result<u64> {
        if batch.is_empty() {
            return Ok(0);
        }
        db.apply_restored(store, batch, next)?;
        let n = batch.len() as u64;
        Metrics::add(&metrics.restored_records, n);
        batch.clear();
        Ok(n)
    }
}
