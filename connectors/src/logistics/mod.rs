//! SIM logistics: the fulfilment house that packs and posts physical SIM cards. The platform
//! asks it for a shipment per order item, learns the ICCIDs of the cards it picked (they go
//! into the subscription), and follows the parcel's tracking events until it is delivered
//! or returned.
//!
//! The fulfilment house's API is plain REST: every create carries an `Idempotency-Key`, so a
//! create whose answer was lost is sent again and never ships twice.
//!
//! - [`client`]: the platform's client: idempotent shipment creates, shipment and tracking
//!   reads, every failure sorted into unavailable, rate-limited or refused;
//! - [`logistics_sim`]: the simulator (`tcom logistics-sim`): the REST API with in-memory
//!   state, and simulator-only controls to move a parcel along, inject faults and read a
//!   ledger;
//! - [`webhook`]: the signed tracking notifications the house POSTs when a parcel moves.

pub mod client;
pub mod logistics_sim;
pub mod webhook;
