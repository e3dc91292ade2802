//! Errors of the runtime crate.

use rdkafka::error::KafkaError;

/// What can go wrong talking to Kafka.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kafka client error: {0}")]
    Kafka(#[from] KafkaError),
    #[error("topic {topic}: {message}")]
    Topic { topic: String, message: String },
    #[error("a blocking Kafka call could not finish: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("state store: {0}")]
    Store(String),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether the failure is expected to clear by itself (a partition without a leader yet,
    /// a coordinator moving, a broker briefly unreachable): the caller retries with backoff.
    /// Everything else (fenced, corrupt state, bad configuration) is fatal.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Kafka(e) => kafka_error_is_transient(e),
            // A restore that stalled or a topic whose metadata is not there yet.
            Error::Topic { .. } => true,
            Error::Join(_) | Error::Store(_) => false,
        }
    }
}

/// The broker's and librdkafka's error codes that mean "try again shortly".
pub(crate) fn kafka_error_is_transient(error: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as Code;
    if let KafkaError::Transaction(e) = error {
        return e.is_retriable() && !e.is_fatal();
    }
    matches!(
        error.rdkafka_error_code(),
        Some(
            Code::NotLeaderForPartition
                | Code::LeaderNotAvailable
                | Code::UnknownTopicOrPartition
                | Code::UnknownTopic
                | Code::UnknownPartition
                | Code::NotCoordinator
                | Code::CoordinatorNotAvailable
                | Code::CoordinatorLoadInProgress
                | Code::RequestTimedOut
                | Code::NetworkException
                | Code::BrokerNotAvailable
                | Code::NotEnoughReplicas
                | Code::NotEnoughReplicasAfterAppend
                | Code::RebalanceInProgress
                | Code::ConcurrentTransactions
                | Code::OperationTimedOut
                | Code::AllBrokersDown
                | Code::BrokerTransportFailure
                | Code::OffsetNotAvailable
                | Code::FetchSessionIdNotFound
                | Code::KafkaStorageError
                | Code::PreferredLeaderNotAvailable
                | Code::MessageTimedOut
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::types::RDKafkaErrorCode;

    #[test]
    fn leaderless_partitions_and_moving_coordinators_are_transient() {
        for code in [
            RDKafkaErrorCode::NotLeaderForPartition,
            RDKafkaErrorCode::UnknownTopicOrPartition,
            RDKafkaErrorCode::NotCoordinator,
            RDKafkaErrorCode::CoordinatorLoadInProgress,
        ] {
            let error = Error::Kafka(KafkaError::MetadataFetch(code));
            assert!(error.is_transient(), "{code:?}");
        }
    }

    #[test]
    fn fencing_corruption_and_configuration_errors_are_fatal() {
        for code in [
            RDKafkaErrorCode::ProducerFenced,
            RDKafkaErrorCode::InvalidProducerEpoch,
            RDKafkaErrorCode::TopicAuthorizationFailed,
            RDKafkaErrorCode::InvalidConfig,
        ] {
            let error = Error::Kafka(KafkaError::MetadataFetch(code));
            assert!(!error.is_transient(), "{code:?}");
        }
        assert!(!Error::Store("corrupt".to_owned()).is_transient());
    }
}
