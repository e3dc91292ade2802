//! The Confluent Schema Registry REST API, for the endpoints that serializers, converters and
//! common tooling use. Answers use `application/vnd.schemaregistry.v1+json`, and every error,
//! including those axum answers by itself (unknown route, wrong method, unreadable body), has
//! Confluent's error body (`{"error_code": 40401, "message": "..."}`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::map_response;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{Mutex, RwLock};

use crate::compat::CompatibilityLevel;
use crate::error::{RegistryError, Result};
use crate::kafka_log::KafkaLog;
use crate::log_record::LogRecord;
use crate::state::{RegisterPlan, RegistryState, VersionRef, parse_schema};

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// The registry: state in memory, changes through the Kafka log.
#[derive(Debug)]
pub struct Registry {
    state: RwLock<RegistryState>,
    log: KafkaLog,
    /// Serialises writers so that a plan is applied to the state it was made from.
    writer: Mutex<()>,
}

impl Registry {
    /// A registry over an opened log and the state replayed from it.
    pub fn new(log: KafkaLog, state: RegistryState) -> Self {
        Self {
            state: RwLock::new(state),
            log,
            writer: Mutex::new(()),
        }
    }

    /// Persists records, then applies them. The caller holds the writer lock.
    async fn commit(&self, records: &[LogRecord]) -> Result<()> {
        self.log.append(records).await?;
        let mut state = self.state.write().await;
        records.iter().for_each(|r| state.apply(r));
        Ok(())
    }
}

/// The registry's routes.
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/", get(|| async { reply(json!({})) }))
        .route("/subjects", get(list_subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route(
            "/subjects/{subject}/versions",
            get(list_versions).post(register),
        )
        .route(
            "/subjects/{subject}/versions/{version}",
            get(get_version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(get_version_schema),
        )
        .route("/schemas/types", get(|| async { reply(json!(["AVRO"])) }))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id))
        .route("/schemas/ids/{id}/subjects", get(subjects_by_id))
        .route("/schemas/ids/{id}/versions", get(versions_by_id))
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(check_all),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(check_one),
        )
        .route("/config", get(get_global_config).put(put_global_config))
        .route(
            "/config/{subject}",
            get(get_subject_config)
                .put(put_subject_config)
                .delete(delete_subject_config),
        )
        .route(
            "/mode",
            get(|| async { reply(json!({"mode": "READWRITE"})) }),
        )
        .layer(map_response(confluent_errors))
        .with_state(registry)
}

fn reply(body: Value) -> Response {
    let mut response = axum::Json(body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        if matches!(self, Self::Store(_)) {
            tracing::error!(error = %self, "Registry store failure.");
        }
        let mut response =
            reply(json!({"error_code": self.error_code(), "message": self.to_string()}));
        *response.status_mut() =
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        response
    }
}

/// Gives the errors that axum answers by itself, in plain text or with no body at all, the
/// shape of Confluent's: `error_code` is the HTTP status, as Confluent's registry does for
/// them, and the message is axum's text or, when it has none, the status line ("HTTP 404 Not
/// Found", Confluent's wording). Errors of the handlers already have that shape.
async fn confluent_errors(response: Response) -> Response {
    let status = response.status();
    let already_ours = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value == CONTENT_TYPE);
    if already_ours || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default();
    let message = if text.is_empty() {
        format!(
            "HTTP {} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or_default()
        )
    } else {
        text
    };
    let mut answer = RegistryError::Http {
        status: status.as_u16(),
        message,
    }
    .into_response();
    // A 405 says which methods the path has.
    if let Some(allow) = parts.headers.remove(header::ALLOW) {
        answer.headers_mut().insert(header::ALLOW, allow);
    }
    answer
}

type Shared = State<Arc<Registry>>;

/// The boolean query parameters, read as Confluent's registry reads them (Java's
/// `Boolean.parseBoolean`): `true` in any letter case is true; anything else, or no value, is
/// false. Python's `False`/`True` therefore work, and a query string is never refused. Of
/// repeated parameters the first counts. Parameters the stand-in has no use for (`normalize`:
/// schemas are always compared in normalised form; `format`, `offset`, `limit`) are ignored.
#[derive(Debug)]
struct Flags {
    deleted: bool,
    permanent: bool,
    verbose: bool,
    default_to_global: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for Flags {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        let pairs: Vec<(String, String)> = Query::try_from_uri(&parts.uri)
            .map(|Query(pairs)| pairs)
            .unwrap_or_default();
        let flag = |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == name)
                .is_some_and(|(_, value)| value.eq_ignore_ascii_case("true"))
        };
        Ok(Self {
            deleted: flag("deleted"),
            permanent: flag("permanent"),
            verbose: flag("verbose"),
            default_to_global: flag("defaultToGlobal"),
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaRequest {
    schema: String,
    #[serde(default)]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<Value>,
}

fn parse_body<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| RegistryError::BadRequest(e.to_string()))
}

fn parse_schema_request(body: &Bytes) -> Result<crate::state::StoredSchema> {
    let request: SchemaRequest = parse_body(body)?;
    match request.schema_type.as_deref() {
        None | Some("AVRO") => {}
        Some(other) => {
            return Err(RegistryError::InvalidSchema(format!(
                "schema type {other} is not supported by this registry (AVRO only)"
            )));
        }
    }
    if !request.references.is_empty() {
        return Err(RegistryError::InvalidSchema(
            "schema references are not supported by this registry".to_owned(),
        ));
    }
    parse_schema(&request.schema)
}

async fn list_subjects(State(r): Shared, f: Flags) -> Response {
    reply(json!(r.state.read().await.subjects(f.deleted)))
}

async fn list_versions(
    State(r): Shared,
    Path(subject): Path<String>,
    f: Flags,
) -> Result<Response> {
    Ok(reply(json!(
        r.state.read().await.versions(&subject, f.deleted)?
    )))
}

#[tracing::instrument(skip(r, body))]
async fn register(State(r): Shared, Path(subject): Path<String>, body: Bytes) -> Result<Response> {
    let schema = parse_schema_request(&body)?;
    let _writer = r.writer.lock().await;
    let plan = r.state.read().await.plan_register(&subject, &schema)?;
    let id = match plan {
        RegisterPlan::Existing(id) => id,
        RegisterPlan::New { id, record } => {
            r.commit(std::slice::from_ref(&record)).await?;
            tracing::info!(subject, id, "Registered a schema.");
            id
        }
    };
    Ok(reply(json!({"id": id})))
}

async fn lookup(State(r): Shared, Path(subject): Path<String>, body: Bytes) -> Result<Response> {
    let schema = parse_schema_request(&body)?;
    let found = r.state.read().await.lookup(&subject, &schema)?;
    Ok(reply(json!({
        "subject": found.subject, "version": found.version, "id": found.id, "schema": found.schema
    })))
}

async fn get_version(
    State(r): Shared,
    Path((subject, version)): Path<(String, String)>,
    f: Flags,
) -> Result<Response> {
    let version = VersionRef::parse(&version)?;
    let found = r.state.read().await.version(&subject, version, f.deleted)?;
    Ok(reply(json!({
        "subject": found.subject, "version": found.version, "id": found.id, "schema": found.schema
    })))
}

async fn get_version_schema(
    State(r): Shared,
    Path((subject, version)): Path<(String, String)>,
) -> Result<Response> {
    let version = VersionRef::parse(&version)?;
    let found = r.state.read().await.version(&subject, version, false)?;
    let raw: Value =
        serde_json::from_str(&found.schema).map_err(|e| RegistryError::Store(e.to_string()))?;
    Ok(reply(raw))
}

async fn delete_subject(
    State(r): Shared,
    Path(subject): Path<String>,
    f: Flags,
) -> Result<Response> {
    let _writer = r.writer.lock().await;
    let (versions, records) = r
        .state
        .read()
        .await
        .plan_delete_subject(&subject, f.permanent)?;
    r.commit(&records).await?;
    tracing::info!(subject, permanent = f.permanent, "Deleted a subject.");
    Ok(reply(json!(versions)))
}

async fn delete_version(
    State(r): Shared,
    Path((subject, version)): Path<(String, String)>,
    f: Flags,
) -> Result<Response> {
    let version = VersionRef::parse(&version)?;
    let _writer = r.writer.lock().await;
    let (number, record) =
        r.state
            .read()
            .await
            .plan_delete_version(&subject, version, f.permanent)?;
    r.commit(std::slice::from_ref(&record)).await?;
    Ok(reply(json!(number)))
}

fn parse_id(id: &str) -> Result<u32> {
    id.parse().map_err(|_| RegistryError::SchemaNotFound)
}

async fn schema_by_id(State(r): Shared, Path(id): Path<String>) -> Result<Response> {
    let state = r.state.read().await;
    let schema = state.schema_by_id(parse_id(&id)?)?;
    Ok(reply(json!({"schema": schema.text})))
}

async fn raw_schema_by_id(State(r): Shared, Path(id): Path<String>) -> Result<Response> {
    let state = r.state.read().await;
    let schema = state.schema_by_id(parse_id(&id)?)?;
    let raw: Value =
        serde_json::from_str(&schema.text).map_err(|e| RegistryError::Store(e.to_string()))?;
    Ok(reply(raw))
}

async fn subjects_by_id(State(r): Shared, Path(id): Path<String>, f: Flags) -> Result<Response> {
    let id = parse_id(&id)?;
    let state = r.state.read().await;
    state.schema_by_id(id)?;
    let mut subjects: Vec<String> = state
        .usages_of(id, f.deleted)
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    subjects.dedup();
    Ok(reply(json!(subjects)))
}

async fn versions_by_id(State(r): Shared, Path(id): Path<String>, f: Flags) -> Result<Response> {
    let id = parse_id(&id)?;
    let state = r.state.read().await;
    state.schema_by_id(id)?;
    let usages: Vec<Value> = state
        .usages_of(id, f.deleted)
        .into_iter()
        .map(|(subject, version)| json!({"subject": subject, "version": version}))
        .collect();
    Ok(reply(json!(usages)))
}

fn compatibility_reply(messages: Vec<String>, verbose: bool) -> Response {
    let mut body = json!({"is_compatible": messages.is_empty()});
    if verbose {
        body["messages"] = json!(messages);
    }
    reply(body)
}

async fn check_all(
    State(r): Shared,
    Path(subject): Path<String>,
    f: Flags,
    body: Bytes,
) -> Result<Response> {
    let schema = parse_schema_request(&body)?;
    let messages = r
        .state
        .read()
        .await
        .compatibility_messages(&subject, &schema, None)?;
    Ok(compatibility_reply(messages, f.verbose))
}

async fn check_one(
    State(r): Shared,
    Path((subject, version)): Path<(String, String)>,
    f: Flags,
    body: Bytes,
) -> Result<Response> {
    let version = VersionRef::parse(&version)?;
    let schema = parse_schema_request(&body)?;
    let messages = r
        .state
        .read()
        .await
        .compatibility_messages(&subject, &schema, Some(version))?;
    Ok(compatibility_reply(messages, f.verbose))
}

fn parse_level(body: &Bytes) -> Result<CompatibilityLevel> {
    let request: HashMap<String, Value> = parse_body(body)?;
    request
        .get("compatibility")
        .and_then(Value::as_str)
        .ok_or(RegistryError::InvalidCompatibilityLevel)?
        .parse()
        .map_err(|_| RegistryError::InvalidCompatibilityLevel)
}

async fn get_global_config(State(r): Shared) -> Response {
    reply(json!({"compatibilityLevel": r.state.read().await.global_level().as_str()}))
}

async fn put_global_config(State(r): Shared, body: Bytes) -> Result<Response> {
    let level = parse_level(&body)?;
    let _writer = r.writer.lock().await;
    r.commit(&[RegistryState::plan_config(None, Some(level))])
        .await?;
    Ok(reply(json!({"compatibility": level.as_str()})))
}

async fn get_subject_config(
    State(r): Shared,
    Path(subject): Path<String>,
    f: Flags,
) -> Result<Response> {
    let state = r.state.read().await;
    let level = match state.subject_level(&subject) {
        Some(level) => level,
        None if f.default_to_global => state.global_level(),
        None => return Err(RegistryError::SubjectConfigNotFound(subject)),
    };
    Ok(reply(json!({"compatibilityLevel": level.as_str()})))
}

async fn put_subject_config(
    State(r): Shared,
    Path(subject): Path<String>,
    body: Bytes,
) -> Result<Response> {
    let level = parse_level(&body)?;
    let _writer = r.writer.lock().await;
    r.commit(&[RegistryState::plan_config(Some(&subject), Some(level))])
        .await?;
    Ok(reply(json!({"compatibility": level.as_str()})))
}

async fn delete_subject_config(State(r): Shared, Path(subject): Path<String>) -> Result<Response> {
    let _writer = r.writer.lock().await;
    let previous = r
        .state
        .read()
        .await
        .subject_level(&subject)
        .ok_or_else(|| RegistryError::SubjectNotFound(subject.clone()))?;
    r.commit(&[RegistryState::plan_config(Some(&subject), None)])
        .await?;
    Ok(reply(json!({"compatibilityLevel": previous.as_str()})))
}
