//! Envelope encryption of personal data, with `ring`'s AES-256-GCM (no hand-written crypto).
//!
//! Three layers of keys:
//! - the platform's **master key** (from the operator's secret store) wraps
//! - each tenant's **wrapping key** (one per tenant, in the key store), which wraps
//! - each customer's **data key** (one per customer, in the key store), which seals the
//!   customer's fields (CPR, name, address, e-mail, phone) wherever they travel or rest.
//!
//! Erasing a customer deletes their data key: every sealed copy — in Kafka topics, RocksDB
//! changelogs, views, backups — stays as it is and can never be opened again
//! (crypto-shredding). Each seal binds its context (tenant, customer, field) as associated
//! data, so a sealed value copied into another customer's record, or another field, does not
//! open.
//!
//! A sealed value is text: `pd1.` + base64url(nonce ‖ ciphertext ‖ tag), 96-bit random nonces.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

/// The prefix of every sealed value (the format's version).
pub const SEALED_PREFIX: &str = "pd1.";

/// Why a value could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("not a sealed value")]
    Malformed,
    /// A wrong key, another context, or tampered bytes: AES-GCM cannot tell which.
    #[error("the sealed value does not open with this key in this context")]
    DoesNotOpen,
    #[error("the system's random number generator failed")]
    Random,
}

/// A 256-bit AES-GCM key. Never printed: `Debug` shows nothing of it.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(…)")
    }
}

impl SecretKey {
    /// A new random key.
    ///
    /// # Errors
    /// The system's random number generator failed.
    pub fn generate() -> Result<Self, EnvelopeError> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| EnvelopeError::Random)?;
        Ok(Self(bytes))
    }

    /// The master key derived (HKDF-SHA256) from the operator's secret, which may be any
    /// high-entropy text.
    pub fn derive_master(secret: &str) -> Self {
        Self::derive(secret, "personal-data-wrapping")
    }

    /// A key for one `purpose`, derived (HKDF-SHA256) from the operator's secret: keys of
    /// different purposes are independent although they come from one secret.
    pub fn derive(secret: &str, purpose: &str) -> Self {
        struct Len32;
        impl ring::hkdf::KeyType for Len32 {
            fn len(&self) -> usize {
                32
            }
        }
        let salt = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"tcom-master-key-v1");
        let prk = salt.extract(secret.as_bytes());
        let mut bytes = [0u8; 32];
        prk.expand(&[purpose.as_bytes()], Len32)
            .and_then(|okm| okm.fill(&mut bytes))
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Self(bytes)
    }

    /// HMAC-SHA256 of `data` under this key, hex: a keyed digest that names something
    /// (a broker's subject) without revealing it.
    pub fn digest(&self, data: &str) -> String {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.0);
        hex::encode(ring::hmac::sign(&key, data.as_bytes()).as_ref())
    }

    fn aead(&self) -> LessSafeKey {
        LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &self.0).expect("a 32-byte key is a valid AES-256 key"),
        )
    }

    /// Seals `plaintext`, bound to `context`.
    ///
    /// # Errors
    /// The random number generator failed.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> Result<String, EnvelopeError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| EnvelopeError::Random)?;
        let mut buffer = plaintext.to_vec();
        self.aead()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut buffer,
            )
            .map_err(|_| EnvelopeError::DoesNotOpen)?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&buffer);
        Ok(format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// Opens a value [`Self::seal`] sealed in the same `context`.
    ///
    /// # Errors
    /// Not a sealed value, or it does not open with this key and context.
    pub fn open(&self, sealed: &str, context: &str) -> Result<Vec<u8>, EnvelopeError> {
        let encoded = sealed
            .strip_prefix(SEALED_PREFIX)
            .ok_or(EnvelopeError::Malformed)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| EnvelopeError::Malformed)?;
        if bytes.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(EnvelopeError::Malformed);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| EnvelopeError::Malformed)?;
        let mut buffer = ciphertext.to_vec();
        let plaintext = self
            .aead()
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buffer)
            .map_err(|_| EnvelopeError::DoesNotOpen)?;
        Ok(plaintext.to_vec())
    }

    /// Seals another key with this one (a tenant's wrapping key, a customer's data key).
    ///
    /// # Errors
    /// As [`Self::seal`].
    pub fn wrap(&self, key: &SecretKey, context: &str) -> Result<String, EnvelopeError> {
        self.seal(&key.0, context)
    }

    /// Opens a key [`Self::wrap`] wrapped.
    ///
    /// # Errors
    /// As [`Self::open`], or the content is not a key.
    pub fn unwrap_key(&self, wrapped: &str, context: &str) -> Result<SecretKey, EnvelopeError> {
        let bytes = self.open(wrapped, context)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| EnvelopeError::Malformed)?;
        Ok(SecretKey(bytes))
    }

    /// Seals text.
    ///
    /// # Errors
    /// As [`Self::seal`].
    pub fn seal_text(&self, text: &str, context: &str) -> Result<String, EnvelopeError> {
        self.seal(text.as_bytes(), context)
    }

    /// Opens sealed text.
    ///
    /// # Errors
    /// As [`Self::open`], or the content is not UTF-8.
    pub fn open_text(&self, sealed: &str, context: &str) -> Result<String, EnvelopeError> {
        String::from_utf8(self.open(sealed, context)?).map_err(|_| EnvelopeError::Malformed)
    }
}

/// The context a customer's field is sealed in: the value opens only as that field of that
/// customer of that tenant.
pub fn field_context(tenant: &str, customer: &str, field: &str) -> String {
    format!("tcom/pd/{tenant}/{customer}/{field}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_context() {
        let key = SecretKey::generate().unwrap();
        let context = field_context("nordlys", "c1", "cpr");
        let sealed = key.seal_text("0104901234", &context).unwrap();
        assert!(sealed.starts_with(SEALED_PREFIX));
        assert!(!sealed.contains("0104901234"));
        assert_eq!(key.open_text(&sealed, &context).unwrap(), "0104901234");

        let other = SecretKey::generate().unwrap();
        assert_eq!(
            other.open_text(&sealed, &context),
            Err(EnvelopeError::DoesNotOpen)
        );
        for moved in [
            field_context("nordlys", "c2", "cpr"),
            field_context("nordlys", "c1", "name"),
            field_context("brightwave", "c1", "cpr"),
        ] {
            assert_eq!(
                key.open_text(&sealed, &moved),
                Err(EnvelopeError::DoesNotOpen)
            );
        }
    }

    #[test]
    fn the_same_value_sealed_twice_differs_and_tampering_is_detected() {
        let key = SecretKey::generate().unwrap();
        let a = key.seal_text("Anna", "ctx").unwrap();
        let b = key.seal_text("Anna", "ctx").unwrap();
        assert_ne!(a, b, "random nonces: equal values are not recognisable");
        let mut bytes = URL_SAFE_NO_PAD.decode(&a[SEALED_PREFIX.len()..]).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
        assert_eq!(
            key.open_text(&tampered, "ctx"),
            Err(EnvelopeError::DoesNotOpen)
        );
        assert_eq!(key.open_text("Anna", "ctx"), Err(EnvelopeError::Malformed));
        assert_eq!(
            key.open_text("pd1.AAAA", "ctx"),
            Err(EnvelopeError::Malformed)
        );
    }

    #[test]
    fn keys_wrap_keys_and_the_master_key_is_stable_for_its_secret() {
        let master = SecretKey::derive_master("operator secret");
        assert_eq!(master.0, SecretKey::derive_master("operator secret").0);
        assert_ne!(master.0, SecretKey::derive_master("another").0);
        let data_key = SecretKey::generate().unwrap();
        let wrapped = master.wrap(&data_key, "tenant/nordlys").unwrap();
        let back = master.unwrap_key(&wrapped, "tenant/nordlys").unwrap();
        assert_eq!(back.0, data_key.0);
        assert!(master.unwrap_key(&wrapped, "tenant/brightwave").is_err());
        assert_eq!(format!("{data_key:?}"), "SecretKey(…)");
    }
}
