//! Pure domain logic: value types with parsing constructors, rules, pricing. No I/O.

pub mod msisdn;
pub mod pricing;
pub mod tenant_id;

pub use msisdn::{Msisdn, MsisdnError};
pub use tenant_id::{TenantId, TenantIdError};
