//! Schema-registry encoding from the runtime's (synchronous) processing thread.

use std::sync::Arc;

use tcom_schemas::{Codec, Contract};
use tcom_state::ProcessError;
use tokio::runtime::Handle;

/// A [`Codec`] usable where blocking is allowed: the runtime's own thread, never an async
/// task. Schemas are cached after the first use, so most calls never leave the process.
#[derive(Debug, Clone)]
pub struct BlockingCodec {
    codec: Arc<Codec>,
    runtime: Handle,
}

fn process_error(e: tcom_schemas::Error) -> ProcessError {
    if e.is_retryable() {
        ProcessError::Retryable(e.to_string())
    } else {
        ProcessError::Permanent(e.to_string())
    }
}

impl BlockingCodec {
    /// Wraps a codec; `runtime` drives its HTTP calls to the registry.
    pub fn new(codec: Arc<Codec>, runtime: Handle) -> Self {
        Self { codec, runtime }
    }

    /// Encodes in the wire format.
    ///
    /// # Errors
    /// Registry unreachable (retryable) or the value does not fit the schema (permanent).
    pub fn encode<T: Contract>(&self, value: &T) -> Result<Vec<u8>, ProcessError> {
        self.runtime
            .block_on(self.codec.encode(value))
            .map_err(process_error)
    }

    /// Decodes from the wire format.
    ///
    /// # Errors
    /// Registry unreachable (retryable) or bytes that will never decode (permanent).
    pub fn decode<T: Contract>(&self, bytes: &[u8]) -> Result<T, ProcessError> {
        self.runtime
            .block_on(self.codec.decode(bytes))
            .map_err(process_error)
    }
}
