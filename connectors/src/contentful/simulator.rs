//! A Contentful simulator for tests and the local run. It speaks the shapes the platform uses
//! of the Content Delivery API's Sync endpoint:
//!
//! - `GET /spaces/{space}/environments/{env}/sync?initial=true[&limit=n]` and
//!   `GET …/sync?sync_token=…` with `Authorization: Bearer <delivery token>`;
//! - answers `{"sys":{"type":"Array"},"items":[…]}` with either `nextPageUrl` (more pages) or
//!   `nextSyncUrl` (done; keep it for the next delta);
//! - items are `Entry` (fields in every locale: `{"field":{"da-DK":…}}`) or, in deltas,
//!   `DeletedEntry`; the initial sync has no deletions;
//! - errors as Contentful's `{"sys":{"type":"Error","id":"AccessTokenInvalid"},…}`.
//!
//! Content is changed through simulator-only endpoints (`/_sim/…`), standing in for editors
//! publishing in the Contentful web app.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

/// One change in a space's history.
#[derive(Debug, Clone)]
struct Change {
    entry_id: String,
    /// `None`: deleted.
    entry: Option<Value>,
}

#[derive(Debug, Default)]
struct Space {
    token: String,
    /// Every publish and delete, in order; the sequence number is the index + 1.
    history: Vec<Change>,
    revisions: HashMap<String, i64>,
}

#[derive(Debug, Clone, Default)]
struct Sim {
    spaces: Arc<Mutex<HashMap<String, Space>>>,
    base_url: Arc<Mutex<String>>,
}

fn error(status: StatusCode, id: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"sys": {"type": "Error", "id": id}, "message": message})),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
struct SyncQuery {
    initial: Option<bool>,
    sync_token: Option<String>,
    limit: Option<usize>,
}

/// A sync cursor: `{initial|delta}.{from}.{upto}.{offset}`, opaque to clients.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    initial: bool,
    from: usize,
    upto: usize,
    offset: usize,
}

impl Cursor {
    fn encode(self) -> String {
        let mode = if self.initial { "i" } else { "d" };
        format!("{mode}.{}.{}.{}", self.from, self.upto, self.offset)
    }

    fn decode(token: &str) -> Option<Self> {
        let mut parts = token.split('.');
        let initial = match parts.next()? {
            "i" => true,
            "d" => false,
            _ => return None,
        };
        Some(Self {
            initial,
            from: parts.next()?.parse().ok()?,
            upto: parts.next()?.parse().ok()?,
            offset: parts.next()?.parse().ok()?,
        })
    }
}

async fn sync(
    State(sim): State<Sim>,
    Path((space_id, environment)): Path<(String, String)>,
    Query(query): Query<SyncQuery>,
    headers: HeaderMap,
) -> Response {
    let spaces = sim.spaces.lock().expect("simulator lock");
    let Some(space) = spaces.get(&format!("{space_id}/{environment}")) else {
        return error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "The resource could not be found.",
        );
    };
    let bearer = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "));
    if bearer != Some(space.token.as_str()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "AccessTokenInvalid",
            "The access token you sent could not be found or is invalid.",
        );
    }
    let cursor = match (query.initial, query.sync_token.as_deref()) {
        (Some(true), None) => Cursor {
            initial: true,
            from: 0,
            upto: space.history.len(),
            offset: 0,
        },
        (_, Some(token)) => match Cursor::decode(token) {
            // A finished sync's token starts the next delta at the end it reached.
            Some(c) if c.offset == 0 && c.from == c.upto && !c.initial => Cursor {
                initial: false,
                from: c.from,
                upto: space.history.len(),
                offset: 0,
            },
            Some(c) => c,
            None => return error(StatusCode::BAD_REQUEST, "BadRequest", "Invalid sync token."),
        },
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Either initial=true or sync_token is required.",
            );
        }
    };
    // The newest state of every entry changed in (from, upto]; the initial sync leaves out
    // deletions.
    let mut latest: Vec<(String, Option<Value>)> = Vec::new();
    for change in
        &space.history[cursor.from.min(space.history.len())..cursor.upto.min(space.history.len())]
    {
        latest.retain(|(id, _)| id != &change.entry_id);
        latest.push((change.entry_id.clone(), change.entry.clone()));
    }
    let items: Vec<Value> = latest
        .into_iter()
        .filter_map(|(id, entry)| match entry {
            Some(entry) => Some(entry),
            None if cursor.initial => None,
            None => Some(json!({"sys": {"type": "DeletedEntry", "id": id, "revision": space.revisions.get(&id).copied().unwrap_or(1)}})),
        })
        .collect();
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let page: Vec<Value> = items
        .iter()
        .skip(cursor.offset)
        .take(limit)
        .cloned()
        .collect();
    let base = sim.base_url.lock().expect("simulator lock").clone();
    let url = |token: String| {
        format!("{base}/spaces/{space_id}/environments/{environment}/sync?sync_token={token}")
    };
    let mut body = json!({"sys": {"type": "Array"}, "items": page});
    if cursor.offset + limit < items.len() {
        body["nextPageUrl"] = json!(url(Cursor {
            offset: cursor.offset + limit,
            ..cursor
        }
        .encode()));
    } else {
        body["nextSyncUrl"] = json!(url(Cursor {
            initial: false,
            from: cursor.upto,
            upto: cursor.upto,
            offset: 0
        }
        .encode()));
    }
    Json(body).into_response()
}

#[derive(Debug, Deserialize)]
struct SpaceRequest {
    token: String,
}

async fn put_space(
    State(sim): State<Sim>,
    Path((space_id, environment)): Path<(String, String)>,
    Json(request): Json<SpaceRequest>,
) -> StatusCode {
    let mut spaces = sim.spaces.lock().expect("simulator lock");
    spaces
        .entry(format!("{space_id}/{environment}"))
        .or_default()
        .token = request.token;
    StatusCode::NO_CONTENT
}

#[derive(Debug, Deserialize)]
struct EntryRequest {
    content_type: String,
    /// `{"field": {"locale": value}}`, as Contentful stores localised fields.
    fields: Value,
}

async fn publish_entry(
    State(sim): State<Sim>,
    Path((space_id, environment, entry_id)): Path<(String, String, String)>,
    Json(request): Json<EntryRequest>,
) -> Response {
    let mut spaces = sim.spaces.lock().expect("simulator lock");
    let Some(space) = spaces.get_mut(&format!("{space_id}/{environment}")) else {
        return error(StatusCode::NOT_FOUND, "NotFound", "No such space.");
    };
    let revision = space.revisions.entry(entry_id.clone()).or_insert(0);
    *revision += 1;
    let entry = json!({
        "sys": {
            "type": "Entry",
            "id": entry_id,
            "space": {"sys": {"type": "Link", "linkType": "Space", "id": space_id}},
            "environment": {"sys": {"type": "Link", "linkType": "Environment", "id": environment}},
            "contentType": {"sys": {"type": "Link", "linkType": "ContentType", "id": request.content_type}},
            "revision": *revision,
        },
        "fields": request.fields,
    });
    space.history.push(Change {
        entry_id,
        entry: Some(entry.clone()),
    });
    Json(entry).into_response()
}

async fn delete_entry(
    State(sim): State<Sim>,
    Path((space_id, environment, entry_id)): Path<(String, String, String)>,
) -> Response {
    let mut spaces = sim.spaces.lock().expect("simulator lock");
    let Some(space) = spaces.get_mut(&format!("{space_id}/{environment}")) else {
        return error(StatusCode::NOT_FOUND, "NotFound", "No such space.");
    };
    space.history.push(Change {
        entry_id,
        entry: None,
    });
    StatusCode::NO_CONTENT.into_response()
}

/// The simulator's routes.
fn router(sim: Sim) -> Router {
    Router::new()
        .route("/spaces/{space}/environments/{env}/sync", get(sync))
        .route("/_sim/spaces/{space}/environments/{env}", put(put_space))
        .route(
            "/_sim/spaces/{space}/environments/{env}/entries/{entry}",
            put(publish_entry).delete(delete_entry),
        )
        .with_state(sim)
}

/// Binds the simulator and serves it until `shutdown`; returns the bound address first
/// through `on_bound`.
///
/// # Errors
/// The address cannot be bound.
pub async fn serve(
    listen: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_bound: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let address = listener.local_addr()?;
    let sim = Sim::default();
    *sim.base_url.lock().expect("simulator lock") = format!("http://{address}");
    on_bound(address);
    tracing::info!(%address, "Contentful simulator listening.");
    axum::serve(listener, router(sim))
        .with_graceful_shutdown(shutdown)
        .await
}
