//! eSIM delivery: the activation code an SM-DP+ gives us for a downloaded profile order, and
//! the QR code the customer scans with the phone to install the profile.
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
mod qr;

pub use activation_code::{ActivationCode, ActivationCodeError};
pub use qr::{ActivationQr, QrError};
