//! Pure domain logic: value types with parsing constructors, rules, pricing. No I/O.

pub mod basket;
pub mod basket_events;
pub mod catalog_rules;
pub mod contact;
pub mod cpr;
pub mod hostname;
pub mod identity;
pub mod msisdn;
pub mod number_rules;
pub mod order;
pub mod order_document;
pub mod porting;
pub mod pricing;
pub mod product_inventory;
pub mod tenant_id;
pub mod tenant_rules;
pub mod text;
pub mod violation;

pub use msisdn::{Msisdn, MsisdnError};
pub use tenant_id::{TenantId, TenantIdError};
pub use violation::Violation;
