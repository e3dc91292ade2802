//! Connectors: processors that talk to the outside world. They consume the platform's topics
//! and call out (payment providers, TCM, Contentful, the SM-DP+, SIM logistics, carriers) or
//! materialize views into PostgreSQL, and produce what they learn back to Kafka.
//!
//! Views are written under Row-Level Security: every write sets the transaction's
//! `app.tenant_id` first, so even a connector bug cannot put one tenant's row where another
//! can read it.

pub mod catalog_view;
pub mod circuit_breaker;
pub mod contentful;
pub mod dead_letter;
pub mod esim;
pub mod identity;
pub mod logistics;
pub mod outbox_relay;
pub mod payments;
pub mod personal_data;
pub mod porting;
pub mod postgres;
pub mod replies;
pub mod secrets;
pub mod signed_webhook;
pub mod sim_connector;
mod sim_line;
pub mod storefront_view;
pub mod tcm;
pub mod tenant_view;
pub mod views;
