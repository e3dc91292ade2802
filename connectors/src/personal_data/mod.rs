//! Personal data of customers: sealed with per-customer keys (see [`envelope`]), keys kept in
//! the [`key_store`]. Crypto-shredding on erasure: the data key is destroyed, every sealed
//! copy becomes unreadable.

pub mod envelope;
pub mod key_store;

pub use envelope::{EnvelopeError, SecretKey, field_context};
pub use key_store::{KeyStore, KeyStoreError, PublicJwk, SigningKey};
