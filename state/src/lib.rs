//! The stream-processing runtime's foundation: Kafka client configuration and topic
//! administration shared by every role of the platform. It knows nothing about telecom.
//!
//! The exactly-once partition-task runtime (RocksDB stores, changelogs, restore, timers,
//! dead letters) grows here; see `DESIGN.md` section 5.

pub mod admin;
pub mod client;
mod error;

pub use error::{Error, Result};
