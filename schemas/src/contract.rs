//! The link between a Rust type, its topic and its committed Avro schema.

use std::sync::OnceLock;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// A record type that travels on one topic, with the `.avsc` schema committed in `schemas/avro`.
///
/// Compatibility rules the types follow (and the compatibility test enforces on the schemas):
/// add fields only with a default (and `#[serde(default)]` on the Rust side); add union
/// branches (enum variants) only at the end; never rename or reorder.
pub trait Contract: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The topic whose values have this type; the registry subject is `{TOPIC}-value`.
    const TOPIC: &'static str;
    /// The schema text, as committed.
    const SCHEMA: &'static str;

    /// The parsed schema (parsed once).
    fn schema() -> &'static Schema;

    /// The registry subject (Confluent's TopicNameStrategy).
    fn subject() -> String {
        format!("{}-value", Self::TOPIC)
    }

    /// Encodes the Avro body alone (no wire-format prefix).
    ///
    /// # Errors
    /// The value does not fit the schema (a bug: the type and schema disagree).
    fn to_avro(&self) -> Result<Vec<u8>> {
        GenericDatumWriter::builder(Self::schema())
            .build()
            .and_then(|w| w.write_ser_to_vec(self))
            .map_err(|e| Error::Encode(Self::TOPIC, e.to_string()))
    }

    /// Decodes an Avro body written with this type's own schema.
    ///
    /// # Errors
    /// The bytes are not a valid body for the schema.
    fn from_avro(bytes: &[u8]) -> Result<Self> {
        let value = GenericDatumReader::builder(Self::schema())
            .build()
            .and_then(|r| r.read_value(&mut &bytes[..]))
            .map_err(|e| Error::Decode(Self::TOPIC, e.to_string()))?;
        crate::wire::from_writer_value(&value)
    }
}

/// Parses a committed schema once. Used by the `contract!` declarations.
pub(crate) fn parse_once(
    cell: &'static OnceLock<Schema>,
    text: &str,
    name: &str,
) -> &'static Schema {
    cell.get_or_init(|| {
        Schema::parse_str(text)
            .unwrap_or_else(|e| panic!("committed schema {name} does not parse: {e}"))
    })
}

/// Declares a type's topic and schema file.
macro_rules! contract {
    ($type:ty, $topic:literal) => {
        impl $crate::contract::Contract for $type {
            const TOPIC: &'static str = $topic;
            const SCHEMA: &'static str = include_str!(concat!("../avro/", $topic, ".avsc"));

            fn schema() -> &'static apache_avro::Schema {
                static CELL: std::sync::OnceLock<apache_avro::Schema> = std::sync::OnceLock::new();
                $crate::contract::parse_once(&CELL, Self::SCHEMA, $topic)
            }
        }
    };
}
pub(crate) use contract;

/// A contract's topic and schema text, for registration and checks over all of them.
#[derive(Debug, Clone, Copy)]
pub struct ContractInfo {
    pub topic: &'static str,
    pub schema: &'static str,
}

impl ContractInfo {
    fn of<T: Contract>() -> Self {
        Self {
            topic: T::TOPIC,
            schema: T::SCHEMA,
        }
    }

    /// The registry subject.
    pub fn subject(&self) -> String {
        format!("{}-value", self.topic)
    }
}

/// Every contract of the platform.
pub fn all() -> Vec<ContractInfo> {
    use crate::{
        basket, campaign, catalog, content, msisdn, order, payment, porting, sim, tcm, tenant,
    };
    vec![
        ContractInfo::of::<tenant::Tenant>(),
        ContractInfo::of::<tenant::TenantCommand>(),
        ContractInfo::of::<catalog::ProductOffering>(),
        ContractInfo::of::<catalog::CatalogCommand>(),
        ContractInfo::of::<campaign::Campaign>(),
        ContractInfo::of::<campaign::CampaignCommand>(),
        ContractInfo::of::<content::ContentNotification>(),
        ContractInfo::of::<basket::BasketCommand>(),
        ContractInfo::of::<basket::BasketEvent>(),
        ContractInfo::of::<basket::BasketSnapshot>(),
        ContractInfo::of::<msisdn::MsisdnCommand>(),
        ContractInfo::of::<msisdn::MsisdnEvent>(),
        ContractInfo::of::<msisdn::PhoneNumber>(),
        ContractInfo::of::<order::OrderCommand>(),
        ContractInfo::of::<order::OrderEvent>(),
        ContractInfo::of::<order::OrderSnapshot>(),
        ContractInfo::of::<payment::PaymentCommand>(),
        ContractInfo::of::<payment::PaymentEvent>(),
        ContractInfo::of::<porting::PortingCommand>(),
        ContractInfo::of::<porting::PortingEvent>(),
        ContractInfo::of::<sim::SimCommand>(),
        ContractInfo::of::<sim::SimEvent>(),
        ContractInfo::of::<tcm::TcmCommand>(),
        ContractInfo::of::<tcm::TcmEvent>(),
    ]
}
