//! The Confluent wire format through a schema registry: `0x00`, a 4-byte big-endian schema
//! id, then the Avro body.
//!
//! Encoding always uses the schema this build was compiled with (registered, or found, under
//! the topic's subject), never "whatever is latest": a newer writer elsewhere must not make
//! this build write data its own types do not describe.
//!
//! Decoding reads the body with the *writer's* schema (fetched by id and cached) and maps it
//! onto the Rust type by field name and union branch index. That is Avro schema resolution for
//! the evolutions the contracts allow (fields added with defaults, union branches appended):
//! fields the reader does not know are skipped, fields the writer did not have take their
//! `serde` default. (apache-avro's own resolution matches union branches by shape, which
//! confuses records of identical shape, such as `ReserveNumber` and `ExtendReservation`.)

use std::time::Duration;

use apache_avro::types::Value;
use schema_registry_converter::async_impl::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::async_impl::schema_registry::{SrSettings, post_schema};
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};
use serde::de::DeserializeOwned;

use crate::contract::{Contract, ContractInfo};
use crate::error::{Error, Result};

/// Maps a decoded Avro value onto a Rust type.
///
/// # Errors
/// [`Error::Decode`] when the value does not fit the type.
pub fn from_writer_value<T: Contract>(value: &Value) -> Result<T> {
    apache_avro::from_value::<T>(value).map_err(|e| Error::Decode(T::TOPIC, e.to_string()))
}

/// Splits a wire-format message into its schema id and Avro body.
///
/// # Errors
/// [`Error::Decode`] when the magic byte or id is missing.
pub fn split_wire(bytes: &[u8]) -> std::result::Result<(u32, &[u8]), String> {
    match bytes {
        [0, a, b, c, d, body @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), body)),
        _ => Err("not in the Confluent wire format (magic byte 0 and a schema id)".to_owned()),
    }
}

/// Encodes and decodes contract types through a schema registry, caching schemas by subject
/// and by id.
pub struct Codec {
    settings: SrSettings,
    encoder: AvroEncoder,
    decoder: AvroDecoder,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec").finish_non_exhaustive()
    }
}

fn supplied(schema: &str) -> SuppliedSchema {
    SuppliedSchema::new(None, SchemaType::Avro, schema.to_owned())
}

impl Codec {
    /// A codec talking to the registry at `url`.
    ///
    /// # Errors
    /// The URL or HTTP client settings are invalid.
    pub fn new(url: &str) -> Result<Self> {
        let settings = SrSettings::new_builder(url.to_owned())
            .no_proxy()
            .set_timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self {
            encoder: AvroEncoder::new(settings.clone()),
            decoder: AvroDecoder::new(settings.clone()),
            settings,
        })
    }

    /// Registers every contract's schema under its subject; idempotent. Run at start-up so a
    /// schema that the registry refuses (incompatible) stops the deployment, not a request.
    ///
    /// # Errors
    /// The registry is unreachable or refuses a schema; the message names the subject.
    pub async fn register_all(&self, contracts: &[ContractInfo]) -> Result<Vec<(String, u32)>> {
        let mut ids = Vec::with_capacity(contracts.len());
        for contract in contracts {
            let subject = contract.subject();
            let registered =
                post_schema(&self.settings, subject.clone(), supplied(contract.schema))
                    .await
                    .map_err(|e| Error::Registry {
                        retryable: e.retriable,
                        message: format!("registering {subject}: {e}"),
                    })?;
            ids.push((subject, registered.id));
        }
        Ok(ids)
    }

    /// Encodes a value in the wire format with its type's schema.
    ///
    /// # Errors
    /// The registry is unreachable (retryable) or the value does not fit its schema.
    pub async fn encode<T: Contract>(&self, value: &T) -> Result<Vec<u8>> {
        let strategy = SubjectNameStrategy::TopicNameStrategyWithSchema(
            T::TOPIC.to_owned(),
            false,
            supplied(T::SCHEMA),
        );
        Ok(self.encoder.encode_struct(value, &strategy).await?)
    }

    /// Decodes a wire-format value into a contract type.
    ///
    /// # Errors
    /// The registry is unreachable (retryable), the id is unknown, or the body does not decode
    /// into `T` (permanent: dead-letter it).
    pub async fn decode<T: Contract + DeserializeOwned>(&self, bytes: &[u8]) -> Result<T> {
        split_wire(bytes).map_err(|e| Error::Decode(T::TOPIC, e))?;
        let decoded = self.decoder.decode(Some(bytes)).await?;
        from_writer_value(&decoded.value)
    }
}
