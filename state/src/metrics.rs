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
        let count = |c: &AtomicU64| c.load(Ordering::Relaxed).to_string();
        let gauge = |g: &AtomicI64| g.load(Ordering::Relaxed).to_string();
        let commit_seconds = self.commit_micros_total.load(Ordering::Relaxed) as f64 / 1e6;
        let series = [
            (
                "tcom_runtime_records_total",
                "counter",
                "Input records processed",
                count(&self.records),
            ),
            (
                "tcom_runtime_duplicates_total",
                "counter",
                "Records skipped as duplicate commands",
                count(&self.duplicates),
            ),
            (
                "tcom_runtime_dead_letters_total",
                "counter",
                "Records sent to a dead-letter topic",
                count(&self.dead_letters),
            ),
            (
                "tcom_runtime_retries_total",
                "counter",
                "Retries of retryable failures",
                count(&self.retries),
            ),
            (
                "tcom_runtime_commits_total",
                "counter",
                "Transactions committed",
                count(&self.commits),
            ),
            (
                "tcom_runtime_commit_seconds_total",
                "counter",
                "Time spent committing",
                commit_seconds.to_string(),
            ),
            (
                "tcom_runtime_aborts_total",
                "counter",
                "Transactions aborted",
                count(&self.aborts),
            ),
            (
                "tcom_runtime_restored_records_total",
                "counter",
                "Changelog records restored",
                count(&self.restored_records),
            ),
            (
                "tcom_runtime_tasks",
                "gauge",
                "Tasks owned",
                gauge(&self.tasks),
            ),
            (
                "tcom_runtime_consumer_lag",
                "gauge",
                "Input records not yet consumed",
                gauge(&self.consumer_lag),
            ),
        ];
        let mut out = String::new();
        for (name, kind, help, value) in series {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{application=\"{application}\"}} {value}\n"
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_has_every_series_with_its_value() {
        let metrics = Metrics::default();
        Metrics::add(&metrics.records, 5);
        metrics.record_commit(1_500_000);
        metrics.consumer_lag.store(7, Ordering::Relaxed);
        let text = metrics.render_prometheus("basket");
        assert!(
            text.contains("tcom_runtime_records_total{application=\"basket\"} 5\n"),
            "{text}"
        );
        assert!(
            text.contains("tcom_runtime_commit_seconds_total{application=\"basket\"} 1.5\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE tcom_runtime_consumer_lag gauge\ntcom_runtime_consumer_lag{application=\"basket\"} 7\n"), "{text}");
    }
}
