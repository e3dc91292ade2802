//! Number porting: a port-in line's number brought from the customer's current operator
//! through the clearing house (Denmark's OCH, the UK's PAC-based switching). The platform
//! submits the request, the losing operator answers within 48 hours, and the number moves on
//! the port date; the clearing house says so in signed webhooks, which the platform checks by
//! reading the request back.
//!
//! - [`client`]: the platform's client: idempotent submissions, reads, webhook subscriptions;
//! - [`connector`]: relays `porting.commands` to the clearing house and reports on
//!   `porting.events`;
//! - [`carrier_sim`]: the simulator (`tcom carrier-sim`);
//! - [`webhook`]: the notifications the clearing house POSTs.

pub mod carrier_sim;
pub mod client;
pub mod connector;
pub mod webhook;
