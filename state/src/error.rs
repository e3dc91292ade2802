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

impl Error {
    /// Whether trying again later can succeed (a broker that is still starting, a timeout),
    /// as opposed to a configuration mistake that will fail the same way every time.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Kafka(e) => e.rdkafka_error_code().is_none_or(|code| {
                use rdkafka::types::RDKafkaErrorCode as C;
                matches!(
                    code,
                    C::BrokerTransportFailure
                        | C::AllBrokersDown
                        | C::OperationTimedOut
                        | C::RequestTimedOut
                        | C::LeaderNotAvailable
                        | C::NotController
                        | C::NotCoordinator
                        | C::CoordinatorLoadInProgress
                )
            }),
            Self::Topic { .. } => false,
            Self::Join(_) | Self::Store(_) => false,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
