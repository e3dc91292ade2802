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
    /// Transient Kafka errors retried (opening tasks, restoring, committing).
    pub transient_retries: AtomicU64,
    /// Pauses of the loop because a record kept failing with a retryable error.
    pub retry_pauses: AtomicU64,
    /// 1 while the loop is paused on a retryable error, else 0.
    pub paused: AtomicI64,
    /// 1 while assigned tasks restore their state, else 0.
    pub restoring: AtomicI64,
    /// 1 once the consumer group assigned this instance its partitions (possibly none).
    pub assignment_received: AtomicI64,
    /// Milliseconds since the Unix epoch of the loop's last turn: a loop that stopped turning
    /// is not ready even if its thread lives.
    pub loop_heartbeat_ms: AtomicI64,
}

impl Metrics {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn beat(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        self.loop_heartbeat_ms.store(now, Ordering::Relaxed);
    }

    /// Why the runtime reporting these metrics cannot do its work, if it cannot: no partition
    /// assignment yet, restoring, paused on a retryable error, or a loop that stopped turning
    /// for `stall` (its thread may live, but nothing is processed).
    ///
    /// # Errors
    /// The reason, for a readiness report.
    pub fn readiness(&self, now_ms: i64, stall: std::time::Duration) -> Result<(), String> {
        if self.assignment_received.load(Ordering::Relaxed) == 0 {
            return Err("waiting for the consumer group to assign partitions".to_owned());
        }
        if self.restoring.load(Ordering::Relaxed) != 0 {
            return Err("restoring task state".to_owned());
        }
        if self.paused.load(Ordering::Relaxed) != 0 {
            return Err("paused: a record keeps failing with a retryable error".to_owned());
        }
        let since = now_ms - self.loop_heartbeat_ms.load(Ordering::Relaxed);
        if since > stall.as_millis() as i64 {
            return Err(format!("the processing loop has not turned for {since} ms"));
        }
        Ok(())
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
            (
                "tcom_runtime_transient_retries_total",
                "counter",
                "Transient Kafka errors retried while opening tasks, restoring or committing",
                count(&self.transient_retries),
            ),
            (
                "tcom_runtime_retry_pauses_total",
                "counter",
                "Pauses because a record kept failing with a retryable error",
                count(&self.retry_pauses),
            ),
            (
                "tcom_runtime_paused",
                "gauge",
                "1 while paused on a retryable error",
                gauge(&self.paused),
            ),
            (
                "tcom_runtime_restoring",
                "gauge",
                "1 while assigned tasks restore their state",
                gauge(&self.restoring),
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
    fn readiness_needs_an_assignment_a_restored_state_and_a_turning_loop() {
        let stall = std::time::Duration::from_secs(10);
        let metrics = Metrics::default();
        assert!(
            metrics
                .readiness(50_000, stall)
                .unwrap_err()
                .contains("assign")
        );
        metrics.assignment_received.store(1, Ordering::Relaxed);
        metrics.restoring.store(1, Ordering::Relaxed);
        assert!(
            metrics
                .readiness(50_000, stall)
                .unwrap_err()
                .contains("restoring")
        );
        metrics.restoring.store(0, Ordering::Relaxed);
        metrics.loop_heartbeat_ms.store(45_000, Ordering::Relaxed);
        assert_eq!(metrics.readiness(50_000, stall), Ok(()));
        metrics.paused.store(1, Ordering::Relaxed);
        assert!(
            metrics
                .readiness(50_000, stall)
                .unwrap_err()
                .contains("paused")
        );
        metrics.paused.store(0, Ordering::Relaxed);
        assert!(
            metrics
                .readiness(61_000, stall)
                .unwrap_err()
                .contains("not turned")
        );
    }

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
        assert!(
            text.contains("tcom_runtime_paused{application=\"basket\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE tcom_runtime_consumer_lag gauge\ntcom_runtime_consumer_lag{application=\"basket\"} 7\n"), "{text}");
    }
}
