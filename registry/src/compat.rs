//! Compatibility levels and the checks behind them, as the Confluent registry defines them.
//!
//! Avro schema resolution decides whether data written with one schema can be read with
//! another. "Backward" means the new schema reads data written with the old ones (consumers
//! upgrade first); "forward" means old schemas read data written with the new one (producers
//! upgrade first); "full" is both. The transitive forms check against every live version, the
//! plain forms against the latest only.

use std::fmt;
use std::str::FromStr;

use apache_avro::Schema;
use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};

/// A subject's (or the registry's global) compatibility level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CompatibilityLevel {
    None,
    #[default]
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl CompatibilityLevel {
    /// The name used on the wire (`"BACKWARD_TRANSITIVE"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Backward => "BACKWARD",
            Self::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Self::Forward => "FORWARD",
            Self::ForwardTransitive => "FORWARD_TRANSITIVE",
            Self::Full => "FULL",
            Self::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    fn is_transitive(self) -> bool {
        matches!(
            self,
            Self::BackwardTransitive | Self::ForwardTransitive | Self::FullTransitive
        )
    }

    fn checks_backward(self) -> bool {
        matches!(
            self,
            Self::Backward | Self::BackwardTransitive | Self::Full | Self::FullTransitive
        )
    }

    fn checks_forward(self) -> bool {
        matches!(
            self,
            Self::Forward | Self::ForwardTransitive | Self::Full | Self::FullTransitive
        )
    }
}

impl fmt::Display for CompatibilityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not one of the seven level names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid compatibility level {0:?}")]
pub struct InvalidLevel(pub String);

impl FromStr for CompatibilityLevel {
    type Err = InvalidLevel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_uppercase().as_str() {
            "NONE" => Self::None,
            "BACKWARD" => Self::Backward,
            "BACKWARD_TRANSITIVE" => Self::BackwardTransitive,
            "FORWARD" => Self::Forward,
            "FORWARD_TRANSITIVE" => Self::ForwardTransitive,
            "FULL" => Self::Full,
            "FULL_TRANSITIVE" => Self::FullTransitive,
            _ => return Err(InvalidLevel(s.to_owned())),
        })
    }
}

/// Whether data written with `writer` can always be read with `reader`.
///
/// A partial match (a reader union or enum that lacks some of the writer's branches or symbols)
/// counts as incompatible, as in Confluent's registry: a record that fails to resolve at read
/// time is exactly what the check exists to prevent.
fn reads(writer: &Schema, reader: &Schema) -> Result<(), String> {
    match SchemaCompatibility::can_read(writer, reader) {
        Ok(Compatibility::Full) => Ok(()),
        Ok(Compatibility::Partial) => Err(
            "the reader cannot resolve every value of the writer (a union branch or enum symbol is missing)"
                .to_owned(),
        ),
        Err(e) => Err(e.to_string()),
    }
}

/// Checks `candidate` against a subject's live versions, oldest first, under `level`.
///
/// Returns one message per failed check; an empty list means compatible.
pub fn check(
    level: CompatibilityLevel,
    candidate: &Schema,
    existing: &[(u32, &Schema)],
) -> Vec<String> {
    let against: &[(u32, &Schema)] = if level.is_transitive() {
        existing
    } else {
        existing.last().map(std::slice::from_ref).unwrap_or(&[])
    };
    let mut messages = Vec::new();
    for (version, old) in against {
        if level.checks_backward()
            && let Err(e) = reads(old, candidate)
        {
            messages.push(format!(
                "BACKWARD: the new schema cannot read data written with version {version}: {e}"
            ));
        }
        if level.checks_forward()
            && let Err(e) = reads(candidate, old)
        {
            messages.push(format!(
                "FORWARD: version {version} cannot read data written with the new schema: {e}"
            ));
        }
    }
    messages
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(fields: &str) -> Schema {
        Schema::parse_str(&format!(
            r#"{{"type":"record","name":"R","fields":[{fields}]}}"#
        ))
        .unwrap()
    }

    fn v1() -> Schema {
        schema(r#"{"name":"a","type":"string"}"#)
    }
    /// v1 plus a field with a default: readable both ways.
    fn v2_optional() -> Schema {
        schema(r#"{"name":"a","type":"string"},{"name":"b","type":"int","default":0}"#)
    }
    /// v1 plus a required field: new readers cannot read old data.
    fn v2_required() -> Schema {
        schema(r#"{"name":"a","type":"string"},{"name":"b","type":"int"}"#)
    }
    /// v1 without its field: old readers cannot read new data (no default for `a`).
    fn v2_dropped() -> Schema {
        schema(r#"{"name":"c","type":"int","default":1}"#)
    }

    #[test]
    fn adding_a_field_with_default_is_fully_compatible() {
        let (old, new) = (v1(), v2_optional());
        assert!(check(CompatibilityLevel::FullTransitive, &new, &[(1, &old)]).is_empty());
    }

    #[test]
    fn adding_a_required_field_breaks_backward_but_not_forward() {
        let (old, new) = (v1(), v2_required());
        let existing = [(1, &old)];
        assert_eq!(
            check(CompatibilityLevel::Backward, &new, &existing).len(),
            1
        );
        assert!(check(CompatibilityLevel::Forward, &new, &existing).is_empty());
        assert_eq!(check(CompatibilityLevel::Full, &new, &existing).len(), 1);
        assert!(check(CompatibilityLevel::None, &new, &existing).is_empty());
    }

    #[test]
    fn removing_a_field_without_default_breaks_forward() {
        let (old, new) = (v1(), v2_dropped());
        let existing = [(1, &old)];
        assert!(check(CompatibilityLevel::Backward, &new, &existing).is_empty());
        let messages = check(CompatibilityLevel::Forward, &new, &existing);
        assert_eq!(messages.len(), 1);
        assert!(messages[0].starts_with("FORWARD"), "{messages:?}");
    }

    #[test]
    fn transitive_levels_check_every_version_plain_levels_only_the_latest() {
        // v1 has `a`; v2 drops `a` (backward ok: `a` simply ignored); v3 re-adds `a` as int
        // without default: reads v2 data? no, `a` missing with no default.
        let v1 = v1();
        let v2 = schema(r#"{"name":"b","type":"int","default":0}"#);
        let v3 = schema(
            r#"{"name":"b","type":"int","default":0},{"name":"a","type":"string","default":"x"}"#,
        );
        let existing = [(1, &v1), (2, &v2)];
        assert!(check(CompatibilityLevel::Backward, &v3, &existing).is_empty());
        assert!(check(CompatibilityLevel::BackwardTransitive, &v3, &existing).is_empty());

        let v3_int = schema(
            r#"{"name":"b","type":"int","default":0},{"name":"a","type":"int","default":1}"#,
        );
        // Against v2 alone this is fine; against v1, whose `a` is a string, it is not.
        assert!(check(CompatibilityLevel::Backward, &v3_int, &existing).is_empty());
        let messages = check(CompatibilityLevel::BackwardTransitive, &v3_int, &existing);
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(messages[0].contains("version 1"), "{messages:?}");
    }

    #[test]
    fn a_missing_union_branch_counts_as_incompatible() {
        let writer = Schema::parse_str(r#"["null","string","int"]"#).unwrap();
        let reader = Schema::parse_str(r#"["null","string"]"#).unwrap();
        assert_eq!(
            check(CompatibilityLevel::Backward, &reader, &[(1, &writer)]).len(),
            1
        );
    }

    #[test]
    fn level_names_round_trip_and_reject_nonsense() {
        for level in [
            CompatibilityLevel::None,
            CompatibilityLevel::Backward,
            CompatibilityLevel::BackwardTransitive,
            CompatibilityLevel::Forward,
            CompatibilityLevel::ForwardTransitive,
            CompatibilityLevel::Full,
            CompatibilityLevel::FullTransitive,
        ] {
            assert_eq!(level.as_str().parse::<CompatibilityLevel>(), Ok(level));
        }
        assert!("SIDEWAYS".parse::<CompatibilityLevel>().is_err());
    }
}
