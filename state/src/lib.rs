//! The stream-processing runtime: exactly-once partition tasks with RocksDB state, changelogs,
//! restore, wall-clock timers, global tables and dead letters, on Apache Kafka. It knows
//! nothing about telecom; domain processors implement [`Processor`].
//!
//! Start one with [`runtime::start`]; see `runtime` for the commit protocol and `store` for
//! how state is kept. Also here: Kafka client settings ([`client`]) and topic administration
//! ([`admin`]) used by every role.

pub mod admin;
pub mod client;
mod error;
pub mod failpoint;
pub mod global;
pub mod metrics;
pub mod processor;
pub mod reply;
mod restore;
pub mod runtime;
pub mod store;

pub use error::{Error, Result};
pub use processor::{Context, Output, ProcessError, Processor, ProcessorFactory, Record};
pub use reply::{Reply, ReplyBody, ReplySink};
pub use runtime::{RuntimeConfig, RuntimeHandle, start};
