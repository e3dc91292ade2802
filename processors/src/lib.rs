//! Domain processors (tenants, catalog, baskets, pool numbers; orders follow) and the
//! pure domain logic they use. Pure logic lives in [`domain`]: no I/O, unit-tested on its own.
//! The processors run it on the stream runtime (`tcom-state`) and answer each command with an
//! [`outcome::Outcome`].

pub mod baskets;
pub mod catalog;
pub mod codec;
mod deadlines;
pub mod deployment;
pub mod domain;
pub mod headers;
mod json_store;
pub mod numbers;
pub mod orders;
pub mod outcome;
pub mod tenants;

pub use codec::BlockingCodec;
pub use outcome::{Outcome, Refusal};
