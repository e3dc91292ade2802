//! The records the registry keeps in its compacted Kafka topic.
//!
//! The shapes follow Confluent's `_schemas` topic: a JSON key naming what the record is about
//! (a subject version, or a config) and a JSON value with its current state. Compaction keeps
//! the newest value per key, a null value (tombstone) removes it, so replaying the topic from
//! the start rebuilds the registry.

use serde::{Deserialize, Serialize};

/// The key of a record in the schemas topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "keytype", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RecordKey {
    /// One version of one subject.
    Schema {
        subject: String,
        version: u32,
        magic: u8,
    },
    /// The compatibility level of a subject, or the global one when `subject` is `None`.
    Config { subject: Option<String>, magic: u8 },
}

/// The value stored under a [`RecordKey::Schema`] key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaValue {
    pub subject: String,
    pub version: u32,
    pub id: u32,
    pub schema: String,
    pub deleted: bool,
}

/// The value stored under a [`RecordKey::Config`] key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigValue {
    #[serde(rename = "compatibilityLevel")]
    pub compatibility_level: String,
}

/// One change to the registry: a key and its new value, `None` for a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogRecord {
    Schema {
        subject: String,
        version: u32,
        value: Option<SchemaValue>,
    },
    Config {
        subject: Option<String>,
        value: Option<ConfigValue>,
    },
}

impl LogRecord {
    /// The record's key, as stored.
    pub fn key(&self) -> RecordKey {
        match self {
            Self::Schema {
                subject, version, ..
            } => RecordKey::Schema {
                subject: subject.clone(),
                version: *version,
                magic: 1,
            },
            Self::Config { subject, .. } => RecordKey::Config {
                subject: subject.clone(),
                magic: 0,
            },
        }
    }

    /// Serialises key and value to the JSON bytes written to Kafka.
    pub fn to_bytes(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        let key = serde_json::to_vec(&self.key()).expect("keys always serialise");
        let value = match self {
            Self::Schema { value, .. } => value.as_ref().map(serde_json::to_vec),
            Self::Config { value, .. } => value.as_ref().map(serde_json::to_vec),
        }
        .transpose()
        .expect("values always serialise");
        (key, value)
    }

    /// Parses a record read from Kafka; unknown key types (Confluent writes some we do not
    /// use, such as NOOP and MODE) are skipped with `Ok(None)`.
    ///
    /// # Errors
    /// Malformed JSON in a key or value we do recognise.
    pub fn from_bytes(key: &[u8], value: Option<&[u8]>) -> Result<Option<Self>, serde_json::Error> {
        let raw: serde_json::Value = serde_json::from_slice(key)?;
        match raw.get("keytype").and_then(|k| k.as_str()) {
            Some("SCHEMA") | Some("CONFIG") => {}
            _ => return Ok(None),
        }
        Ok(Some(match serde_json::from_value::<RecordKey>(raw)? {
            RecordKey::Schema {
                subject, version, ..
            } => Self::Schema {
                subject,
                version,
                value: value.map(serde_json::from_slice).transpose()?,
            },
            RecordKey::Config { subject, .. } => Self::Config {
                subject,
                value: value.map(serde_json::from_slice).transpose()?,
            },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_their_bytes() {
        let records = [
            LogRecord::Schema {
                subject: "basket.commands-value".into(),
                version: 3,
                value: Some(SchemaValue {
                    subject: "basket.commands-value".into(),
                    version: 3,
                    id: 7,
                    schema: r#""string""#.into(),
                    deleted: false,
                }),
            },
            LogRecord::Schema {
                subject: "s".into(),
                version: 1,
                value: None,
            },
            LogRecord::Config {
                subject: None,
                value: Some(ConfigValue {
                    compatibility_level: "FULL".into(),
                }),
            },
        ];
        for record in records {
            let (key, value) = record.to_bytes();
            assert_eq!(
                LogRecord::from_bytes(&key, value.as_deref()).unwrap(),
                Some(record)
            );
        }
    }

    #[test]
    fn keys_have_confluents_shape_and_unknown_key_types_are_skipped() {
        let (key, _) = LogRecord::Config {
            subject: None,
            value: None,
        }
        .to_bytes();
        assert_eq!(
            String::from_utf8(key).unwrap(),
            r#"{"keytype":"CONFIG","subject":null,"magic":0}"#
        );
        assert_eq!(
            LogRecord::from_bytes(br#"{"keytype":"NOOP","magic":0}"#, None).unwrap(),
            None
        );
    }
}
