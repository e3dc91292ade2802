//! The processor API: what domain code writes. A processor handles one record at a time with
//! its task's stores, emits records, and may be called back on a wall-clock timer. It never
//! sees Kafka transactions or offsets: the runtime commits its writes and outputs together
//! with the input offsets, or not at all.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use crate::global::GlobalTables;
use crate::store::{Entries, LayeredView, TaskDb, Writes};

/// An input record, borrowed from the consumer.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the Unix epoch: the producer's (for commands, the ingress') time.
    /// Business logic uses this, not the wall clock, so a replay decides the same way.
    pub timestamp_ms: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [(String, Vec<u8>)],
}

impl Record<'_> {
    /// The first header with this name.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// A record to produce in the current transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub topic: String,
    /// `None` lets the partitioner hash the key (the normal case).
    pub partition: Option<i32>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Output {
    /// A keyed record with a value.
    pub fn new(
        topic: impl Into<String>,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
    ) -> Self {
        Self {
            topic: topic.into(),
            partition: None,
            key: Some(key.into()),
            value: Some(value.into()),
            headers: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// Why a record could not be processed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessError {
    /// Will fail the same way every time (malformed, violates an invariant): the record goes to
    /// the dead-letter topic and processing moves on.
    #[error("{0}")]
    Permanent(String),
    /// May succeed later (a dependency was unavailable): retried with backoff, then
    /// dead-lettered if it keeps failing.
    #[error("{0}")]
    Retryable(String),
}

/// Domain logic run by the runtime, one instance per task (input partition).
pub trait Processor: Send {
    /// Handles one input record.
    ///
    /// # Errors
    /// [`ProcessError`]: nothing the call wrote or emitted is kept.
    fn process(&mut self, ctx: &mut Context<'_>, record: &Record<'_>) -> Result<(), ProcessError>;

    /// Called every `punctuate_interval` with the wall-clock time; outputs and writes join the
    /// current transaction. Default: nothing.
    ///
    /// # Errors
    /// As for `process`; a failed punctuation is logged and retried at the next interval.
    fn punctuate(&mut self, ctx: &mut Context<'_>, now: SystemTime) -> Result<(), ProcessError> {
        let _ = (ctx, now);
        Ok(())
    }
}

/// Creates the processor of each task.
pub type ProcessorFactory = Arc<dyn Fn(i32) -> Box<dyn Processor> + Send + Sync>;

/// What a processor can do while handling a record.
pub struct Context<'a> {
    pub(crate) partition: i32,
    pub(crate) store_ids: &'a HashMap<String, usize>,
    pub(crate) db: &'a TaskDb,
    pub(crate) pending: &'a Writes,
    pub(crate) writes: &'a mut Writes,
    pub(crate) outputs: &'a mut Vec<Output>,
    pub(crate) globals: &'a GlobalTables,
    pub(crate) reply: &'a mut Option<Vec<u8>>,
    pub(crate) origin_replies: &'a mut Vec<(String, Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("partition", &self.partition)
            .finish_non_exhaustive()
    }
}

impl Context<'_> {
    /// The task's partition.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    fn store(&self, name: &str) -> Result<usize, ProcessError> {
        self.store_ids
            .get(name)
            .copied()
            .ok_or_else(|| ProcessError::Permanent(format!("no store named {name:?} is declared")))
    }

    fn view(&self) -> LayeredView<'_> {
        LayeredView {
            db: self.db,
            pending: self.pending,
            top: self.writes,
        }
    }

    /// A value, as this transaction sees it (its own writes included).
    ///
    /// # Errors
    /// An undeclared store (permanent) or a RocksDB failure (retryable).
    pub fn get(&self, store: &str, key: &[u8]) -> Result<Option<Vec<u8>>, ProcessError> {
        let id = self.store(store)?;
        self.view()
            .get(id, key)
            .map_err(|e| ProcessError::Retryable(e.to_string()))
    }

    /// Entries with `start <= key < end`, at most `limit`, in key order.
    ///
    /// # Errors
    /// As for [`Context::get`].
    pub fn range(
        &self,
        store: &str,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Entries, ProcessError> {
        let id = self.store(store)?;
        self.view()
            .range(id, start, end, limit)
            .map_err(|e| ProcessError::Retryable(e.to_string()))
    }

    /// Sets a value.
    ///
    /// # Errors
    /// An undeclared store.
    pub fn put(
        &mut self,
        store: &str,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
    ) -> Result<(), ProcessError> {
        let id = self.store(store)?;
        self.writes.put(id, key.into(), value.into());
        Ok(())
    }

    /// Removes a value.
    ///
    /// # Errors
    /// An undeclared store.
    pub fn delete(&mut self, store: &str, key: impl Into<Vec<u8>>) -> Result<(), ProcessError> {
        let id = self.store(store)?;
        self.writes.delete(id, key.into());
        Ok(())
    }

    /// Produces a record in the current transaction.
    pub fn emit(&mut self, output: Output) {
        self.outputs.push(output);
    }

    /// Answers the command being processed (see [`crate::reply`]): published to its
    /// `reply-to` after the transaction commits, and kept with its command id so a
    /// re-delivered command gets the same answer. The last call wins; without a `reply-to`
    /// header nothing is published.
    pub fn reply(&mut self, body: impl Into<Vec<u8>>) {
        *self.reply = Some(body.into());
    }

    /// Answers an earlier command that this record continues (its `origin-reply-to` and
    /// `origin-command-id` headers, see [`crate::reply::ORIGIN_REPLY_TO_HEADER`]): published
    /// after the transaction commits, and kept with that command's id (when this task
    /// de-duplicates commands and decided it) so a retry of the original gets this answer.
    pub fn reply_to_origin(
        &mut self,
        reply_to: impl Into<String>,
        command_id: impl Into<Vec<u8>>,
        body: impl Into<Vec<u8>>,
    ) {
        self.origin_replies
            .push((reply_to.into(), command_id.into(), body.into()));
    }

    /// A value of a global table (a compacted topic read whole by every instance).
    pub fn global(&self, table: &str, key: &[u8]) -> Option<Arc<[u8]>> {
        self.globals.get(table, key)
    }

    /// The entries of a global table whose keys start with `prefix`, in key order.
    pub fn global_prefix(&self, table: &str, prefix: &[u8]) -> Vec<(Vec<u8>, Arc<[u8]>)> {
        self.globals.scan_prefix(table, prefix)
    }
}
