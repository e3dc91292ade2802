//! TCM: the legacy Telecom Customer Management system, where a brand's customers and their
//! subscriptions live once an order is paid. The platform does not own activation: it creates
//! the customer and the subscription in TCM, and TCM activates the number.
//!
//! TCM exists in production only (there is no test installation), it is slow, and it is
//! sometimes down for maintenance behind a load balancer that answers with an HTML page. So
//! every create carries an idempotency key (`X-Request-Id`) and is safe to send again after a
//! lost answer, and local development and tests run against a simulator instead.
//!
//! - [`client`]: the platform's client: idempotent creates, and every failure sorted into
//!   unavailable (retry, counts against the circuit breaker), rate-limited or refused;
//! - [`connector`]: sends `tcm.commands` to TCM behind a circuit breaker and reports the
//!   answers on `tcm.events`;
//! - [`reconcile`]: compares the platform's subscriptions with TCM's, reports the
//!   differences and records TCM's status on the products (`tcom tcm-reconcile`, and
//!   periodically in the connectors role);
//! - [`tcm_sim`]: the simulator (`tcom tcm-sim`), TCM's REST API with its legacy shapes,
//!   in-memory state and simulator-only controls for faults, a ledger and drift.

pub mod client;
pub mod connector;
pub mod reconcile;
pub mod tcm_sim;
