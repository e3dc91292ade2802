//! Runtime metrics: counters updated on the processing thread with relaxed atomics (no
//! allocation or formatting per record), read by whoever reports them.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Counters and gauges of one runtime instance.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Input records processed (including dead-lettered and duplicate ones).
    pub records: AtomicU64,
    /// Records skipped because their command id was already processed.
    pub duplicates: AtomicU64,
    /// Records sent to a dead-letter topic.
    pub dead_letters: AtomicU64,
    /// Retries of retryable failures.
    pub retries: AtomicU64,
    /// Transactions committed.
    pub commits: AtomicU64,
    /// Transactions aborted.
    pub aborts: AtomicU64,
    /// Sum and maximum of commit latencies, in microseconds.
    pub commit_micros_total: AtomicU64,
    pub commit_micros_max: AtomicU64,
    /// Changelog records replayed into local state.
    pub restored_records: AtomicU64,
    /// Tasks whose restore finished.
    pub restored_tasks: AtomicU64,
    /// Time spent restoring, in microseconds.
    pub restore_micros: AtomicU64,
    /// Tasks currently owned.
    pub tasks: AtomicI64,
    /// Sum over owned input partitions of (high watermark - position), from librdkafka's
    /// statistics.
    pub consumer_lag: AtomicI64,
}

impl Metrics {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn record_commit(&self, micros: u64) {
        Self::add(&self.commits, 1);
        Self::add(&self.commit_micros_total, micros);
        self.commit_micros_max.fetch_max(micros, Ordering::Relaxed);
    }

    /// The metrics in the Prometheus text format, labelled with the application id.
    pub fn render_prometheus(&self, application: &str) -> String {
        let counters = [
            (
                "tcom_runtime_records_total",
                "Input records processed",
                self.records.load(Ordering::Relaxed),
            ),
            (
                "tcom_runtime_duplicates_total",
                "Records skipped as duplicate commands",
                self.duplicates.load(Ordering::Relaxed),
            ),
            (
                "tcom_runtime_dead_letters_total",
                "Records sent to a dead-letter topic",
                self.dead_letters.load(Ordering::Relaxed),
            ),
            (
                "tcom_runtime_retries_total",
                "Retries of retryable failures",
                self.retries.load(Ordering::Relaxed),
            ),
            (
                "tcom_runtime_commits_total",
                "Transactions committed",
                self.commits.load(Ordering::Relaxed),
            ),
            (
                "tcom_runtime_aborts_total",
                "Transactions aborted",
                self.aborts.load(Ordering::Relaxed),
            ),
            ("tcom_runtime_commit_seconds_sum", "Total commit latency", 0),
            (
                "tcom_runtime_restored_records_total",
                "Changelog records restored",
                self.restored_records.load(Ordering::Relaxed),
            ),
        ];
        let mut out = String::new();
        for (name, help, value) in counters {
            let value = if name == "tcom_runtime_commit_seconds_sum" {
                format!(
                    "{}",
                    self.commit_micros_total.load(Ordering::Relaxed) as f64 / 1e6
                )
            } else {
                value.to_string()
            };
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n{name}{{application=\"{application}\"}} {value}\n"));
        }
        for (name, help, value) in [
            (
                "tcom_runtime_tasks",
                "Tasks owned",
                self.tasks.load(Ordering::Relaxed),
            ),
            (
                "tcom_runtime_consumer_lag",
                "Input records not yet consumed",
                self.consumer_lag.load(Ordering::Relaxed),
            ),
        ] {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{application=\"{application}\"}} {value}\n"));
        }
        out
    }
}
