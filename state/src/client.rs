//! Kafka client settings in one place, so every producer and consumer of the platform is
//! configured the same way (and tests can point them at a unique prefix on a shared broker).

use rdkafka::ClientConfig;

/// Where the brokers are and how to reach them.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// `host:port[,host:port…]`.
    pub bootstrap_servers: String,
    /// Extra librdkafka properties (`security.protocol`, `sasl.*`, …) applied to every client.
    pub extra: Vec<(String, String)>,
    /// Replication factor of topics this platform creates.
    pub replication_factor: i32,
    /// `min.insync.replicas` of topics this platform creates.
    pub min_insync_replicas: i32,
}

impl KafkaSettings {
    /// Settings for a broker list with no extra properties.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            extra: Vec::new(),
            replication_factor: 1,
            min_insync_replicas: 1,
        }
    }

    /// A client configuration with the brokers and extra properties set.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap_servers);
        for (k, v) in &self.extra {
            config.set(k, v);
        }
        config
    }

    /// An idempotent producer's configuration: no duplicates from retries, order kept.
    pub fn idempotent_producer(&self) -> ClientConfig {
        let mut config = self.client_config();
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "1")
            // The Java client's partitioner: a key lands on the same partition whichever
            // client produced it, so topics stay co-partitioned with Java producers too.
            .set("partitioner", "murmur2_random");
        config
    }

    /// A transactional producer's configuration with a stable `transactional.id`, which is what
    /// fences a zombie instance after a restart.
    pub fn transactional_producer(&self, transactional_id: &str) -> ClientConfig {
        let mut config = self.idempotent_producer();
        config
            .set("transactional.id", transactional_id)
            // Short enough that a partition whose previous owner died mid-transaction is not
            // blocked for long (read_committed readers wait for the transaction to end).
            .set("transaction.timeout.ms", "10000")
            // Right after a commit the coordinator is still writing the markers and answers
            // the next transaction's first request with CONCURRENT_TRANSACTIONS; the default
            // 100 ms back-off before the retry was most of a commit under load (measured).
            // The Java client retries this case after 20 ms for the same reason.
            .set("retry.backoff.ms", "5")
            .set("retry.backoff.max.ms", "50");
        config
    }

    /// A consumer that sees only committed transactional records and never commits offsets
    /// by itself (offsets are committed with transactions, or not at all).
    pub fn read_committed_consumer(&self, group_id: &str) -> ClientConfig {
        let mut config = self.client_config();
        config
            .set("group.id", group_id)
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            // Interactive latency: do not let the broker hold a fetch for long when little data
            // is waiting (the default is 500 ms).
            .set("fetch.wait.max.ms", "10");
        config
    }
}
