//! A Confluent-compatible schema registry stand-in.
//!
//! No Confluent Schema Registry installs on our machines, yet the platform encodes every
//! command and event in the Confluent wire format (magic byte, schema id, Avro body). This
//! crate serves the REST endpoints that `schema_registry_converter` and common clients use,
//! with Confluent's compatibility levels and error codes, and keeps its state in a compacted
//! Kafka topic as the real registry does. Run it with `tcom registry --listen 127.0.0.1:38081`.
//!
//! Limits (documented, not hidden): Avro only; no schema references; one writer instance at
//! a time (no leader election); no auth.

pub mod compat;
mod error;
mod http;
mod kafka_log;
pub mod log_record;
pub mod state;

use std::net::SocketAddr;
use std::sync::Arc;

pub use error::{RegistryError, Result};
pub use http::{Registry, router};
pub use kafka_log::KafkaLog;
use tcom_state::client::KafkaSettings;

/// The topic the stand-in keeps its state in (the real registry's default name).
pub const DEFAULT_TOPIC: &str = "_schemas";

/// Opens the log, replays it and serves the API until `shutdown` resolves.
///
/// # Errors
/// The log cannot be opened, or the address cannot be bound.
pub async fn serve(
    settings: &KafkaSettings,
    topic: &str,
    listen: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (log, state) = KafkaLog::open(settings, topic)
        .await
        .map_err(std::io::Error::other)?;
    let app = router(Arc::new(Registry::new(log, state)));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(address = %listener.local_addr()?, topic, "Schema registry listening.");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
