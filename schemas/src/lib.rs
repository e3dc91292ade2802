//! The platform's data contracts: Avro schemas (`avro/*.avsc`, one per topic) of every
//! command and event, the Rust types for them, the topic list, and encoding in the Confluent
//! wire format through a schema registry.
//!
//! The `.avsc` files are the source of truth that analytics consumers and other languages
//! read; the Rust types mirror them, and `tests/contracts.rs` proves each type round-trips
//! through its schema. `compat/` holds the schema versions released so far; a test fails when a
//! schema change cannot read data written with them (see `compat/README.md`).

pub mod basket;
pub mod campaign;
pub mod catalog;
pub mod content;
pub mod contract;
mod error;
pub mod fixtures;
pub mod msisdn;
pub mod order;
pub mod payment;
pub mod porting;
pub mod sim;
pub mod tcm;
pub mod tenant;
pub mod topics;
pub mod wire;

pub use contract::Contract;
pub use error::{Error, Result};
pub use wire::Codec;

use contract::contract;

contract!(tenant::Tenant, "tenants");
contract!(tenant::TenantCommand, "tenant.commands");
contract!(catalog::ProductOffering, "catalog.offerings");
contract!(catalog::CatalogCommand, "catalog.commands");
contract!(campaign::Campaign, "catalog.campaigns");
contract!(campaign::CampaignCommand, "campaign.commands");
contract!(content::ContentNotification, "content.notifications");
contract!(basket::BasketCommand, "basket.commands");
contract!(basket::BasketEvent, "basket.events");
contract!(basket::BasketSnapshot, "baskets");
contract!(msisdn::MsisdnCommand, "msisdn.commands");
contract!(msisdn::PhoneNumber, "msisdn.numbers");
contract!(msisdn::MsisdnEvent, "msisdn.events");
contract!(order::OrderCommand, "order.commands");
contract!(order::OrderEvent, "order.events");
contract!(order::OrderSnapshot, "orders");
contract!(payment::PaymentCommand, "payment.commands");
contract!(payment::PaymentEvent, "payment.events");
contract!(porting::PortingCommand, "porting.commands");
contract!(porting::PortingEvent, "porting.events");
contract!(sim::SimCommand, "sim.commands");
contract!(sim::SimEvent, "sim.events");
contract!(tcm::TcmCommand, "tcm.commands");
contract!(tcm::TcmEvent, "tcm.events");
