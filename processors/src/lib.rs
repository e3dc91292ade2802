//! Domain processors (catalog and tenants, basket, MSISDN, order) and the pure domain logic
//! they use. Pure logic lives in [`domain`]: no I/O, unit-tested on its own; the processors
//! that run it on the stream runtime arrive with it.

pub mod domain;
