//! Errors of the schemas crate.

/// Encoding, decoding or registry failures.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot encode a {0} record: {1}")]
    Encode(&'static str, String),
    #[error("cannot decode a {0} record: {1}")]
    Decode(&'static str, String),
    #[error("schema registry: {message}")]
    Registry { message: String, retryable: bool },
}

impl Error {
    /// Whether the same call can succeed later (the registry was unreachable), as opposed to
    /// bytes or schemas that will never decode.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Registry {
                retryable: true,
                ..
            }
        )
    }
}

impl From<schema_registry_converter::error::SRCError> for Error {
    fn from(e: schema_registry_converter::error::SRCError) -> Self {
        Self::Registry {
            retryable: e.retriable,
            message: e.to_string(),
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
