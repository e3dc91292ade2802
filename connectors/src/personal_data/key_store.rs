//! The key store: tenants' session-signing and wrapping keys and customers' data keys, in
//! PostgreSQL (tables `tenant_keys`, `customer_data_keys`), every key sealed by the key above
//! it (see [`super::envelope`]). Every query runs in a tenant-scoped transaction, so
//! Row-Level Security keeps one tenant's keys from another's code paths.
//!
//! Session-signing keys are ES256 (P-256) key pairs generated with `ring`; their public
//! halves are published as JWKs. Keys are created on first use: the first sign-in of a new
//! tenant creates its signing key, the first personal data of a customer their data key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::envelope::{EnvelopeError, SecretKey};
use crate::postgres::begin_for_tenant;

/// Why the key store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error("key store database: {0}")]
    Database(#[from] sqlx::Error),
    /// A sealed key did not open: the master key changed, or the row was tampered with.
    #[error("a stored key of tenant {tenant} does not open ({source}): is the master key right?")]
    Sealed {
        tenant: String,
        source: EnvelopeError,
    },
    #[error("key generation failed")]
    Generation,
}

/// A public ES256 key as a JWK (RFC 7517/7518).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicJwk {
    /// `EC`.
    pub kty: String,
    /// `P-256`.
    pub crv: String,
    pub x: String,
    pub y: String,
    pub kid: String,
    /// `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    /// `ES256`.
    pub alg: String,
}

/// A tenant's active session-signing key.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    /// PKCS#8 DER of the private key.
    pkcs8: Vec<u8>,
    pub public: PublicJwk,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// The private key in PKCS#8 DER, for a JOSE library to sign with.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }
}

const SESSION_SIGNING: &str = "session_signing";
const DATA_WRAPPING: &str = "data_wrapping";

fn signing_context(tenant: &str, kid: &str) -> String {
    format!("tcom/keys/{tenant}/{SESSION_SIGNING}/{kid}")
}

fn wrapping_context(tenant: &str, kid: &str) -> String {
    format!("tcom/keys/{tenant}/{DATA_WRAPPING}/{kid}")
}

fn data_key_context(tenant: &str, customer: &str) -> String {
    format!("tcom/keys/{tenant}/customer/{customer}")
}

fn new_kid(tenant: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{tenant}-{}", &id[..12])
}

/// Keys of every tenant, sealed by the master key.
#[derive(Clone)]
pub struct KeyStore {
    pool: PgPool,
    master: SecretKey,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore").finish_non_exhaustive()
    }
}

impl KeyStore {
    pub fn new(pool: PgPool, master: SecretKey) -> Self {
        Self { pool, master }
    }

    fn sealed(tenant: &str) -> impl FnOnce(EnvelopeError) -> KeyStoreError + '_ {
        move |source| KeyStoreError::Sealed {
            tenant: tenant.to_owned(),
            source,
        }
    }

    /// The tenant's active signing key; created when the tenant has none.
    ///
    /// # Errors
    /// The database fails, or a stored key does not open.
    pub async fn signing_key(&self, tenant: &str) -> Result<SigningKey, KeyStoreError> {
        if let Some(key) = self.active_signing_key(tenant).await? {
            return Ok(key);
        }
        self.insert_signing_key(tenant, false).await?;
        self.active_signing_key(tenant)
            .await?
            .ok_or(KeyStoreError::Generation)
    }

    /// A new active signing key; the previous one is retired but stays published (see
    /// [`Self::verification_keys`]). Returns the new key id.
    ///
    /// # Errors
    /// The database fails.
    pub async fn rotate_signing_key(&self, tenant: &str) -> Result<String, KeyStoreError> {
        self.insert_signing_key(tenant, true).await
    }

    async fn insert_signing_key(
        &self,
        tenant: &str,
        retire: bool,
    ) -> Result<String, KeyStoreError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| KeyStoreError::Generation)?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| KeyStoreError::Generation)?;
        // An uncompressed P-256 point: 0x04 ‖ x (32 bytes) ‖ y (32 bytes).
        let point = pair.public_key().as_ref();
        let kid = new_kid(tenant);
        let jwk = PublicJwk {
            kty: "EC".into(),
            crv: "P-256".into(),
            x: URL_SAFE_NO_PAD.encode(&point[1..33]),
            y: URL_SAFE_NO_PAD.encode(&point[33..65]),
            kid: kid.clone(),
            use_: "sig".into(),
            alg: "ES256".into(),
        };
        let sealed = SecretKey::seal(&self.master, pkcs8.as_ref(), &signing_context(tenant, &kid))
            .map_err(Self::sealed(tenant))?;
        let mut tx = begin_for_tenant(&self.pool, tenant).await?;
        if retire {
            sqlx::query(
                "UPDATE tenant_keys SET retired_at = now()
                 WHERE tenant_id = $1 AND purpose = $2 AND retired_at IS NULL",
            )
            .bind(tenant)
            .bind(SESSION_SIGNING)
            .execute(&mut *tx)
            .await?;
        }
        // Two ingress instances may create a tenant's first key at once: one wins.
        sqlx::query(
            "INSERT INTO tenant_keys (tenant_id, kid, purpose, sealed_key, public_jwk)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (tenant_id, purpose) WHERE retired_at IS NULL DO NOTHING",
        )
        .bind(tenant)
        .bind(&kid)
        .bind(SESSION_SIGNING)
        .bind(&sealed)
        .bind(sqlx::types::Json(&jwk))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(kid)
    }

    async fn active_signing_key(&self, tenant: &str) -> Result<Option<SigningKey>, KeyStoreError> {
        let mut tx = begin_for_tenant(&self.pool, tenant).await?;
        let row: Option<(String, String, sqlx::types::Json<PublicJwk>)> = sqlx::query_as(
            "SELECT kid, sealed_key, public_jwk FROM tenant_keys
             WHERE tenant_id = $1 AND purpose = $2 AND retired_at IS NULL",
        )
        .bind(tenant)
        .bind(SESSION_SIGNING)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let Some((kid, sealed, jwk)) = row else {
            return Ok(None);
        };
        let pkcs8 = self
            .master
            .open(&sealed, &signing_context(tenant, &kid))
            .map_err(Self::sealed(tenant))?;
        Ok(Some(SigningKey {
            kid,
            pkcs8,
            public: jwk.0,
        }))
    }

    /// The public keys a token of the tenant may be signed with: the active key and keys
    /// retired less than `grace_seconds` ago (tokens they signed may still be alive).
    ///
    /// # Errors
    /// The database fails.
    pub async fn verification_keys(
        &self,
        tenant: &str,
        grace_seconds: i64,
    ) -> Result<Vec<PublicJwk>, KeyStoreError> {
        let mut tx = begin_for_tenant(&self.pool, tenant).await?;
        let rows: Vec<(sqlx::types::Json<PublicJwk>,)> = sqlx::query_as(
            "SELECT public_jwk FROM tenant_keys
             WHERE tenant_id = $1 AND purpose = $2
               AND (retired_at IS NULL OR retired_at > now() - make_interval(secs => $3))
             ORDER BY created_at DESC",
        )
        .bind(tenant)
        .bind(SESSION_SIGNING)
        .bind(grace_seconds as f64)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows.into_iter().map(|(jwk,)| jwk.0).collect())
    }

    /// The tenant's wrapping key and its id; created when the tenant has none.
    async fn wrapping_key(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        tenant: &str,
    ) -> Result<(String, SecretKey), KeyStoreError> {
        let kid = new_kid(tenant);
        let fresh = SecretKey::generate().map_err(|_| KeyStoreError::Generation)?;
        let sealed = self
            .master
            .wrap(&fresh, &wrapping_context(tenant, &kid))
            .map_err(Self::sealed(tenant))?;
        sqlx::query(
            "INSERT INTO tenant_keys (tenant_id, kid, purpose, sealed_key)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_id, purpose) WHERE retired_at IS NULL DO NOTHING",
        )
        .bind(tenant)
        .bind(&kid)
        .bind(DATA_WRAPPING)
        .bind(&sealed)
        .execute(&mut **tx)
        .await?;
        let (kid, sealed): (String, String) = sqlx::query_as(
            "SELECT kid, sealed_key FROM tenant_keys
             WHERE tenant_id = $1 AND purpose = $2 AND retired_at IS NULL",
        )
        .bind(tenant)
        .bind(DATA_WRAPPING)
        .fetch_one(&mut **tx)
        .await?;
        let key = self
            .master
            .unwrap_key(&sealed, &wrapping_context(tenant, &kid))
            .map_err(Self::sealed(tenant))?;
        Ok((kid, key))
    }

    /// The customer's data key, created when they have none yet.
    ///
    /// # Errors
    /// The database fails, or a stored key does not open.
    pub async fn data_key_or_create(
        &self,
        tenant: &str,
        customer: &str,
    ) -> Result<SecretKey, KeyStoreError> {
        if let Some(key) = self.data_key(tenant, customer).await? {
            return Ok(key);
        }
        let mut tx = begin_for_tenant(&self.pool, tenant).await?;
        let (wrapping_kid, wrapping) = self.wrapping_key(&mut tx, tenant).await?;
        let fresh = SecretKey::generate().map_err(|_| KeyStoreError::Generation)?;
        let sealed = wrapping
            .wrap(&fresh, &data_key_context(tenant, customer))
            .map_err(Self::sealed(tenant))?;
        sqlx::query(
            "INSERT INTO customer_data_keys (tenant_id, customer_id, wrapping_kid, sealed_key)
             VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, customer_id) DO NOTHING",
        )
        .bind(tenant)
        .bind(customer)
        .bind(&wrapping_kid)
        .bind(&sealed)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        // Whoever won a race, the stored key is the customer's key.
        self.data_key(tenant, customer)
            .await?
            .ok_or(KeyStoreError::Generation)
    }

    /// The customer's data key; `None` when they have none (never had personal data, or
    /// were erased).
    ///
    /// # Errors
    /// The database fails, or a stored key does not open.
    pub async fn data_key(
        &self,
        tenant: &str,
        customer: &str,
    ) -> Result<Option<SecretKey>, KeyStoreError> {
        let mut tx = begin_for_tenant(&self.pool, tenant).await?;
        let row: Option<(String, String, String)> = sqlx::query_as(
            "SELECT d.sealed_key, k.kid, k.sealed_key
             FROM customer_data_keys d
             JOIN tenant_keys k ON k.tenant_id = d.tenant_id AND k.kid = d.wrapping_kid
             WHERE d.tenant_id = $1 AND d.customer_id = $2",
        )
        .bind(tenant)
        .bind(customer)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let Some((sealed_data_key, wrapping_kid, sealed_wrapping)) = row else {
            return Ok(None);
        };
        let wrapping = self
            .master
            .unwrap_key(&sealed_wrapping, &wrapping_context(tenant, &wrapping_kid))
            .map_err(Self::sealed(tenant))?;
        wrapping
            .unwrap_key(&sealed_data_key, &data_key_context(tenant, customer))
            .map(Some)
            .map_err(Self::sealed(tenant))
    }

    /// Destroys the customer's data key in `tx` (crypto-shredding). Returns whether there
    /// was one.
    ///
    /// # Errors
    /// The database fails.
    pub async fn shred(
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        tenant: &str,
        customer: &str,
    ) -> Result<bool, KeyStoreError> {
        let deleted =
            sqlx::query("DELETE FROM customer_data_keys WHERE tenant_id = $1 AND customer_id = $2")
                .bind(tenant)
                .bind(customer)
                .execute(&mut **tx)
                .await?
                .rows_affected();
        Ok(deleted > 0)
    }
}
