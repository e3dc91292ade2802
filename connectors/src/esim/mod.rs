//! eSIM delivery: ordering a profile at an SM-DP+, the activation code it gives us for the
//! order, and the QR code the customer scans with the phone to install the profile.
//!
//! - [`es2plus`]: the platform's ES2+ client (`downloadOrder`, `confirmOrder`,
//!   `releaseProfile`, `cancelOrder`), idempotent by function call identifier, failures sorted
//!   into unavailable, refused (SGP.22 subject and reason codes) or an invalid activation code;
//!   its confirmed order carries the [`ActivationCode`];
//! - [`smdp_sim`]: the SM-DP+ simulator (`tcom smdp-sim`): ES2+ with a profile pool, a
//!   simulated device that downloads a profile with its activation code (and confirmation
//!   code), faults and a ledger under `/_sim`.
//!
//! The SM-DP+ (over ES2+) hands out an SM-DP+ address and a matching ID per profile; the
//! customer's device needs both, in the GSMA SGP.22 §4.1 activation code, to fetch the
//! profile. [`ActivationCode`] is that code, parsed and checked so a malformed code from a
//! provider is caught when it arrives and not when the customer's phone refuses the QR code.
//! [`ActivationQr`] renders it as SVG (for web pages) or PNG (for e-mails, where SVG is not
//! shown by many clients).
//!
//! Whoever holds the activation code can download the profile (unless the SM-DP+ also asks for
//! a confirmation code), so the code and its renderings are secrets for the customer: they
//! must not reach logs, events or error messages. Neither type prints its content in `Debug`
//! and the errors never repeat the text they were given.

mod activation_code;
pub mod es2plus;
mod qr;
pub mod smdp_sim;

pub use activation_code::{ActivationCode, ActivationCodeError};
pub use qr::{ActivationQr, QrError};
