//! The registry's state and its rules, without I/O.
//!
//! Every change is decided in two steps: a `plan_*` method checks the request against the
//! current state and returns the log records that express the change (nothing is mutated);
//! the caller persists them to Kafka and only then calls [`RegistryState::apply`]. The same
//! `apply` rebuilds the state when the topic is replayed at start-up, so a change that was
//! acknowledged is never lost and one that failed to persist is never visible.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use apache_avro::Schema;

use crate::compat::{self, CompatibilityLevel};
use crate::error::{RegistryError, Result};
use crate::log_record::{ConfigValue, LogRecord, SchemaValue};

/// A schema as stored: its normalised text and its parsed form.
#[derive(Debug, Clone)]
pub struct StoredSchema {
    pub text: String,
    pub parsed: Arc<Schema>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct VersionEntry {
    id: u32,
    deleted: bool,
}

/// A subject version as returned to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectVersion {
    pub subject: String,
    pub version: u32,
    pub id: u32,
    pub schema: String,
}

/// What a registration resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterPlan {
    /// The schema is already a live version of the subject: answer with its id, write nothing.
    Existing(u32),
    /// A new version: persist `record`, then answer with `id`.
    New { id: u32, record: LogRecord },
}

/// Which version a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionRef {
    Latest,
    Number(u32),
}

impl VersionRef {
    /// Parses `"latest"`, `"-1"` (Confluent's alias for latest) or a positive number.
    ///
    /// # Errors
    /// [`RegistryError::InvalidVersion`] for anything else.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "latest" | "-1" => Ok(Self::Latest),
            _ => match s.parse::<u32>() {
                Ok(n) if (1..=i32::MAX as u32).contains(&n) => Ok(Self::Number(n)),
                _ => Err(RegistryError::InvalidVersion(s.to_owned())),
            },
        }
    }
}

/// Parses and normalises a schema text: the compact JSON form is what is stored, compared and
/// returned, so whitespace differences never make a second version.
///
/// # Errors
/// [`RegistryError::InvalidSchema`] when the text is not JSON or not a valid Avro schema.
pub fn parse_schema(text: &str) -> Result<StoredSchema> {
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|e| RegistryError::InvalidSchema(e.to_string()))?;
    let normalised = json.to_string();
    let parsed =
        Schema::parse_str(&normalised).map_err(|e| RegistryError::InvalidSchema(e.to_string()))?;
    Ok(StoredSchema {
        text: normalised,
        parsed: Arc::new(parsed),
    })
}

/// All subjects, versions, schemas and configs.
#[derive(Debug, Default)]
pub struct RegistryState {
    subjects: BTreeMap<String, BTreeMap<u32, VersionEntry>>,
    schemas: HashMap<u32, StoredSchema>,
    id_by_text: HashMap<String, u32>,
    global_level: Option<CompatibilityLevel>,
    subject_levels: HashMap<String, CompatibilityLevel>,
}

impl RegistryState {
    /// Applies a persisted record. Records for unknown subjects or versions are applied as
    /// they come: the log is the truth.
    pub fn apply(&mut self, record: &LogRecord) {
        match record {
            LogRecord::Schema {
                subject,
                version,
                value: Some(value),
            } => {
                if !self.schemas.contains_key(&value.id) {
                    match parse_schema(&value.schema) {
                        Ok(stored) => {
                            self.id_by_text.insert(stored.text.clone(), value.id);
                            self.schemas.insert(value.id, stored);
                        }
                        Err(e) => {
                            tracing::warn!(subject, version, error = %e, "Skipping an unparseable schema in the log.");
                            return;
                        }
                    }
                }
                self.subjects.entry(subject.clone()).or_default().insert(
                    *version,
                    VersionEntry {
                        id: value.id,
                        deleted: value.deleted,
                    },
                );
            }
            LogRecord::Schema {
                subject,
                version,
                value: None,
            } => {
                if let Some(versions) = self.subjects.get_mut(subject) {
                    versions.remove(version);
                    if versions.is_empty() {
                        self.subjects.remove(subject);
                    }
                }
            }
            LogRecord::Config { subject, value } => {
                let level = value
                    .as_ref()
                    .and_then(|v| v.compatibility_level.parse::<CompatibilityLevel>().ok());
                match (subject, level) {
                    (None, level) => self.global_level = level,
                    (Some(s), Some(level)) => {
                        self.subject_levels.insert(s.clone(), level);
                    }
                    (Some(s), None) => {
                        self.subject_levels.remove(s);
                    }
                }
            }
        }
    }

    /// The global compatibility level (BACKWARD unless configured).
    pub fn global_level(&self) -> CompatibilityLevel {
        self.global_level.unwrap_or_default()
    }

    /// The level configured for `subject`, if any.
    pub fn subject_level(&self, subject: &str) -> Option<CompatibilityLevel> {
        self.subject_levels.get(subject).copied()
    }

    /// The level that applies to `subject`: its own, else the global one.
    pub fn effective_level(&self, subject: &str) -> CompatibilityLevel {
        self.subject_level(subject)
            .unwrap_or_else(|| self.global_level())
    }

    fn live_versions(&self, subject: &str) -> impl Iterator<Item = (u32, VersionEntry)> + '_ {
        self.subjects
            .get(subject)
            .into_iter()
            .flat_map(|v| v.iter())
            .filter(|(_, e)| !e.deleted)
            .map(|(v, e)| (*v, *e))
    }

    /// Subject names; soft-deleted subjects only when `include_deleted`.
    pub fn subjects(&self, include_deleted: bool) -> Vec<String> {
        self.subjects
            .iter()
            .filter(|(_, versions)| include_deleted || versions.values().any(|e| !e.deleted))
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// Version numbers of a subject.
    ///
    /// # Errors
    /// [`RegistryError::SubjectNotFound`] when it has no (live, unless `include_deleted`) version.
    pub fn versions(&self, subject: &str, include_deleted: bool) -> Result<Vec<u32>> {
        let versions: Vec<u32> = self
            .subjects
            .get(subject)
            .into_iter()
            .flat_map(|v| v.iter())
            .filter(|(_, e)| include_deleted || !e.deleted)
            .map(|(v, _)| *v)
            .collect();
        if versions.is_empty() {
            return Err(RegistryError::SubjectNotFound(subject.to_owned()));
        }
        Ok(versions)
    }

    /// One version of a subject.
    ///
    /// # Errors
    /// Subject or version not found.
    pub fn version(
        &self,
        subject: &str,
        version: VersionRef,
        include_deleted: bool,
    ) -> Result<SubjectVersion> {
        let all = self
            .subjects
            .get(subject)
            .filter(|v| include_deleted || v.values().any(|e| !e.deleted))
            .ok_or_else(|| RegistryError::SubjectNotFound(subject.to_owned()))?;
        let found = match version {
            VersionRef::Latest => all
                .iter()
                .rev()
                .find(|(_, e)| include_deleted || !e.deleted),
            VersionRef::Number(n) => all
                .get_key_value(&n)
                .filter(|(_, e)| include_deleted || !e.deleted),
        };
        let (number, entry) = found.ok_or_else(|| {
            RegistryError::VersionNotFound(match version {
                VersionRef::Latest => "latest".to_owned(),
                VersionRef::Number(n) => n.to_string(),
            })
        })?;
        Ok(SubjectVersion {
            subject: subject.to_owned(),
            version: *number,
            id: entry.id,
            schema: self.schemas[&entry.id].text.clone(),
        })
    }

    /// The schema with a global id.
    ///
    /// # Errors
    /// [`RegistryError::SchemaNotFound`].
    pub fn schema_by_id(&self, id: u32) -> Result<&StoredSchema> {
        self.schemas.get(&id).ok_or(RegistryError::SchemaNotFound)
    }

    /// The (subject, version) pairs that use schema `id`.
    pub fn usages_of(&self, id: u32, include_deleted: bool) -> Vec<(String, u32)> {
        self.subjects
            .iter()
            .flat_map(|(s, versions)| {
                versions
                    .iter()
                    .filter(move |(_, e)| e.id == id && (include_deleted || !e.deleted))
                    .map(move |(v, _)| (s.clone(), *v))
            })
            .collect()
    }

    /// Finds the live version of `subject` whose schema equals `schema`.
    ///
    /// # Errors
    /// Subject not found, or schema not found under it.
    pub fn lookup(&self, subject: &str, schema: &StoredSchema) -> Result<SubjectVersion> {
        if self.live_versions(subject).next().is_none() {
            return Err(RegistryError::SubjectNotFound(subject.to_owned()));
        }
        let id = self
            .id_by_text
            .get(&schema.text)
            .ok_or(RegistryError::SchemaNotFound)?;
        let (version, _) = self
            .live_versions(subject)
            .find(|(_, e)| e.id == *id)
            .ok_or(RegistryError::SchemaNotFound)?;
        self.version(subject, VersionRef::Number(version), false)
    }

    /// Checks `schema` against the subject's live versions under its effective level.
    /// With `only` set, checks against that version alone (the compatibility endpoint's form).
    ///
    /// # Errors
    /// The named version does not exist.
    pub fn compatibility_messages(
        &self,
        subject: &str,
        schema: &StoredSchema,
        only: Option<VersionRef>,
    ) -> Result<Vec<String>> {
        let level = self.effective_level(subject);
        let existing: Vec<(u32, Arc<Schema>)> = match only {
            Some(v) => {
                let found = self.version(subject, v, false)?;
                vec![(found.version, self.schemas[&found.id].parsed.clone())]
            }
            None => self
                .live_versions(subject)
                .map(|(v, e)| (v, self.schemas[&e.id].parsed.clone()))
                .collect(),
        };
        let borrowed: Vec<(u32, &Schema)> =
            existing.iter().map(|(v, s)| (*v, s.as_ref())).collect();
        Ok(compat::check(level, &schema.parsed, &borrowed))
    }

    /// Decides a registration.
    ///
    /// # Errors
    /// [`RegistryError::Incompatible`] when the schema breaks the subject's compatibility level.
    pub fn plan_register(&self, subject: &str, schema: &StoredSchema) -> Result<RegisterPlan> {
        let existing_id = self.id_by_text.get(&schema.text).copied();
        if let Some(id) = existing_id
            && self.live_versions(subject).any(|(_, e)| e.id == id)
        {
            return Ok(RegisterPlan::Existing(id));
        }
        let details = self.compatibility_messages(subject, schema, None)?;
        if !details.is_empty() {
            return Err(RegistryError::Incompatible {
                subject: subject.to_owned(),
                details,
            });
        }
        // The same schema text keeps its global id across subjects, as in Confluent.
        let id = existing_id.unwrap_or_else(|| self.schemas.keys().max().map_or(1, |m| m + 1));
        let version = self
            .subjects
            .get(subject)
            .and_then(|v| v.keys().next_back())
            .map_or(1, |v| v + 1);
        Ok(RegisterPlan::New {
            id,
            record: LogRecord::Schema {
                subject: subject.to_owned(),
                version,
                value: Some(SchemaValue {
                    subject: subject.to_owned(),
                    version,
                    id,
                    schema: schema.text.clone(),
                    deleted: false,
                }),
            },
        })
    }

    /// Decides the deletion of a whole subject; returns the versions it affects.
    ///
    /// # Errors
    /// Subject not found; a soft delete of a subject already soft-deleted; a permanent delete
    /// of one that was not soft-deleted first.
    pub fn plan_delete_subject(
        &self,
        subject: &str,
        permanent: bool,
    ) -> Result<(Vec<u32>, Vec<LogRecord>)> {
        let versions = self
            .subjects
            .get(subject)
            .ok_or_else(|| RegistryError::SubjectNotFound(subject.to_owned()))?;
        let any_live = versions.values().any(|e| !e.deleted);
        if permanent && any_live {
            return Err(RegistryError::SubjectNotSoftDeleted(subject.to_owned()));
        }
        if !permanent && !any_live {
            return Err(RegistryError::SubjectSoftDeleted(subject.to_owned()));
        }
        let mut affected = Vec::new();
        let mut records = Vec::new();
        for (version, entry) in versions {
            if !permanent && entry.deleted {
                continue;
            }
            affected.push(*version);
            records.push(self.version_record(subject, *version, *entry, permanent));
        }
        Ok((affected, records))
    }

    /// Decides the deletion of one version.
    ///
    /// # Errors
    /// As for [`Self::plan_delete_subject`], per version.
    pub fn plan_delete_version(
        &self,
        subject: &str,
        version: VersionRef,
        permanent: bool,
    ) -> Result<(u32, LogRecord)> {
        let found = self.version(subject, version, permanent)?;
        let entry = self.subjects[subject][&found.version];
        if permanent && !entry.deleted {
            return Err(RegistryError::VersionNotSoftDeleted(
                subject.to_owned(),
                found.version,
            ));
        }
        if !permanent && entry.deleted {
            return Err(RegistryError::VersionSoftDeleted(
                subject.to_owned(),
                found.version,
            ));
        }
        Ok((
            found.version,
            self.version_record(subject, found.version, entry, permanent),
        ))
    }

    fn version_record(
        &self,
        subject: &str,
        version: u32,
        entry: VersionEntry,
        permanent: bool,
    ) -> LogRecord {
        LogRecord::Schema {
            subject: subject.to_owned(),
            version,
            value: (!permanent).then(|| SchemaValue {
                subject: subject.to_owned(),
                version,
                id: entry.id,
                schema: self.schemas[&entry.id].text.clone(),
                deleted: true,
            }),
        }
    }

    /// The record that sets (or, with `None`, removes) a compatibility level.
    pub fn plan_config(subject: Option<&str>, level: Option<CompatibilityLevel>) -> LogRecord {
        LogRecord::Config {
            subject: subject.map(str::to_owned),
            value: level.map(|l| ConfigValue {
                compatibility_level: l.as_str().to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str =
        r#"{"type":"record","name":"Basket","fields":[{"name":"id","type":"string"}]}"#;
    const V2: &str = r#"{"type":"record","name":"Basket","fields":[{"name":"id","type":"string"},{"name":"lines","type":"int","default":0}]}"#;
    const V2_BREAKING: &str = r#"{"type":"record","name":"Basket","fields":[{"name":"id","type":"string"},{"name":"lines","type":"int"}]}"#;

    fn register(state: &mut RegistryState, subject: &str, text: &str) -> Result<u32> {
        let schema = parse_schema(text)?;
        match state.plan_register(subject, &schema)? {
            RegisterPlan::Existing(id) => Ok(id),
            RegisterPlan::New { id, record } => {
                state.apply(&record);
                Ok(id)
            }
        }
    }

    #[test]
    fn versions_and_ids_are_assigned_in_order_and_identical_schemas_reuse_ids() {
        let mut state = RegistryState::default();
        assert_eq!(register(&mut state, "a-value", V1), Ok(1));
        assert_eq!(register(&mut state, "a-value", V2), Ok(2));
        // Whitespace does not make a new schema.
        assert_eq!(register(&mut state, "a-value", &format!("  {V1}\n")), Ok(1));
        // The same schema under another subject keeps its id and becomes that subject's v1.
        assert_eq!(register(&mut state, "b-value", V2), Ok(2));
        assert_eq!(state.versions("a-value", false), Ok(vec![1, 2]));
        assert_eq!(
            state
                .version("b-value", VersionRef::Latest, false)
                .unwrap()
                .version,
            1
        );
        assert_eq!(
            state.usages_of(2, false),
            vec![("a-value".into(), 2), ("b-value".into(), 1)]
        );
    }

    #[test]
    fn an_incompatible_schema_is_refused_and_nothing_changes() {
        let mut state = RegistryState::default();
        register(&mut state, "a-value", V1).unwrap();
        let err = register(&mut state, "a-value", V2_BREAKING).unwrap_err();
        assert_eq!(err.status(), 409);
        assert!(err.to_string().contains("incompatible"), "{err}");
        assert_eq!(state.versions("a-value", false), Ok(vec![1]));
        // NONE lets it through.
        state.apply(&RegistryState::plan_config(
            Some("a-value"),
            Some(CompatibilityLevel::None),
        ));
        assert_eq!(register(&mut state, "a-value", V2_BREAKING), Ok(2));
    }

    #[test]
    fn soft_then_permanent_deletion_follows_confluents_rules() {
        let mut state = RegistryState::default();
        register(&mut state, "a-value", V1).unwrap();
        register(&mut state, "a-value", V2).unwrap();

        let err = state.plan_delete_subject("a-value", true).unwrap_err();
        assert_eq!(err.error_code(), 40405);

        let (versions, records) = state.plan_delete_subject("a-value", false).unwrap();
        assert_eq!(versions, vec![1, 2]);
        records.iter().for_each(|r| state.apply(r));
        assert!(state.subjects(false).is_empty());
        assert_eq!(state.subjects(true), vec!["a-value".to_owned()]);
        assert_eq!(
            state
                .plan_delete_subject("a-value", false)
                .unwrap_err()
                .error_code(),
            40404
        );

        let (_, records) = state.plan_delete_subject("a-value", true).unwrap();
        records.iter().for_each(|r| state.apply(r));
        assert!(state.subjects(true).is_empty());
        // Schema ids stay resolvable: data written with them still exists in topics.
        assert!(state.schema_by_id(1).is_ok());
    }

    #[test]
    fn lookup_finds_live_versions_only() {
        let mut state = RegistryState::default();
        register(&mut state, "a-value", V1).unwrap();
        let v1 = parse_schema(V1).unwrap();
        assert_eq!(state.lookup("a-value", &v1).unwrap().version, 1);
        assert_eq!(
            state.lookup("a-value", &parse_schema(V2).unwrap()),
            Err(RegistryError::SchemaNotFound)
        );
        assert_eq!(state.lookup("nope", &v1).unwrap_err().error_code(), 40401);
        let (_, record) = state
            .plan_delete_version("a-value", VersionRef::Number(1), false)
            .unwrap();
        state.apply(&record);
        assert_eq!(
            state.lookup("a-value", &v1).unwrap_err().error_code(),
            40401
        );
    }

    #[test]
    fn invalid_schemas_and_versions_are_rejected_with_their_codes() {
        assert_eq!(parse_schema("{").unwrap_err().error_code(), 42201);
        assert_eq!(
            parse_schema(r#"{"type":"record"}"#)
                .unwrap_err()
                .error_code(),
            42201
        );
        assert_eq!(VersionRef::parse("0").unwrap_err().error_code(), 42202);
        assert_eq!(VersionRef::parse("x").unwrap_err().error_code(), 42202);
        assert_eq!(VersionRef::parse("latest"), Ok(VersionRef::Latest));
        assert_eq!(VersionRef::parse("3"), Ok(VersionRef::Number(3)));
    }
}
