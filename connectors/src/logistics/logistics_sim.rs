//! A simulator of the SIM fulfilment house for tests and the local run (`tcom logistics-sim`):
//! a plain REST API that creates shipments of physical SIM cards, each card with its ICCID,
//! and tracks the parcels; simulator-only controls move a parcel along and make the house as
//! unreliable as any outside system.
//!
//! # Conventions
//!
//! - JSON bodies in camelCase. Timestamps `YYYY-MM-DDThh:mm:ssZ` (UTC).
//! - Every `/v1` request carries `Authorization: Bearer <token>` (any non-empty token).
//! - Errors: `{"code", "message", "fields"?: [{"field", "message"}]}` (`fields` with 422 only):
//!
//! | status | code | when |
//! | --- | --- | --- |
//! | 400 | `idempotency_key_required` | a create without `Idempotency-Key` (or one longer than 255 characters) |
//! | 400 | `invalid_json` | a body that is not JSON |
//! | 400 | `invalid_query` | a query parameter that is unknown or not a whole number |
//! | 401 | `unauthorized` | no bearer token (or an empty one); with `WWW-Authenticate: Bearer` |
//! | 404 | `not_found` | an unknown shipment or path |
//! | 405 | `method_not_allowed` | a method the path does not take |
//! | 409 | `idempotency_key_reused` | an `Idempotency-Key` already used for a different body |
//! | 409 | `invalid_transition` | `/_sim/…/advance` to a status the parcel cannot move to |
//! | 422 | `validation_failed` | a body that is JSON but not a valid request; every problem in `fields` |
//! | 429 | `rate_limited` | the rate limit (`Retry-After: 1`) |
//! | 500 | `internal_error` | an injected failure |
//! | 503 | `service_unavailable` | an injected outage (`Retry-After: 30`) |
//!
//! The token is checked first, then the idempotency key, then the body.
//!
//! - `Idempotency-Key` makes a create safe to send again. The same key with the same body
//!   answers 200 with the shipment it created (as it is now: with the tracking events since),
//!   never a second shipment; with another body, 409 `idempotency_key_reused`. A key whose
//!   request was refused (400, 422) created nothing and can be used again.
//! - Ids are sequential: `SHP0000001`, `SHP0000002`, …
//!
//! # Shipments
//!
//! - `POST /v1/shipments` `{reference (the platform's order item, at most 255 characters),
//!   tenant (at most 64), recipient: {name, street, postalCode, city, country (ISO 3166
//!   alpha-2)}, items: [{sku: "PSIM", quantity (1 to 10)}] (1 to 10 items)}` → 201 the
//!   shipment: `{shipmentId, reference, tenant, recipient, items, status: "created", iccids,
//!   trackingNumber, createdAt, events: [{seq: 1, status: "created", at}]}`. Unknown members
//!   and blank strings are validation errors. `iccids` holds one
//!   ICCID per card (the sum of the quantities), 19 digits: `89459902`, a 10-digit serial and
//!   a Luhn check digit. `trackingNumber` is in the UPU S10 form, `RR` + 8 digits + check
//!   digit + `DK`.
//! - `GET /v1/shipments/{shipmentId}` → 200 the shipment; `status` is its last event's.
//! - `GET /v1/shipments/{shipmentId}/events?after=<seq>` → 200 `{"events": [{seq, status,
//!   at}]}`: the tracking events with a `seq` above `after` (all without it), oldest first.
//!   `seq` counts from 1 per shipment.
//! - A parcel moves `created` → `shipped` → `delivered`, and may be `returned` once shipped
//!   (undeliverable) or delivered (sent back). Nothing follows `returned`.
//! - `GET /healthz` → 200 `{"status": "UP"}`.
//!
//! # Tracking webhooks
//!
//! - `POST /v1/webhook-subscriptions` `{url (http or https), secret, tenant?}` → 201 `{id,
//!   url, tenant}`: from then on every new tracking event of a shipment (of `tenant` only,
//!   when given; subscribing the same URL and tenant again replaces the subscription) is
//!   POSTed to `url` as `{id, type: "shipment.tracking", shipmentId,
//!   reference, tenant, seq, status, at}`, signed as [`super::webhook`] says with `secret`.
//!   A delivery that fails (no connection, a non-2xx answer) is tried again, 5 times in all,
//!   backing off from 200 ms; the ledger's `webhookDeliveries` records each notification's
//!   attempts and last status.
//!
//! # Simulator-only controls (`/_sim`: no authentication, never affected by faults)
//!
//! - `POST /_sim/shipments/{shipmentId}/advance` `{"status": "shipped"|"delivered"|
//!   "returned"}` → 200 the shipment with the new tracking event; 409 `invalid_transition`
//!   for a move the parcel cannot make (delivered before shipped, anything twice, anything
//!   after returned); 422 for another status; 404 for an unknown shipment.
//! - `POST /_sim/faults` `{"latency_ms", "fail_next", "timeout_next", "outage",
//!   "rate_limit_per_second", "lose_response_next"}` (each optional: the members given
//!   replace the current ones) → 200 the faults now in force; `GET` shows them, `DELETE`
//!   clears them all.
//!   - `outage`: every request but `/_sim` (`/healthz` too) answers 503
//!     `service_unavailable` with `Retry-After: 30`.
//!   - The others apply to `/v1` only, in this order: beyond `rate_limit_per_second` calls in a
//!     second, 429 (0: no limit); then `latency_ms` before every call; then each of the next
//!     `timeout_next` calls hangs 30 s and its connection is closed without an answer; then
//!     each of the next `fail_next` calls answers 500. Such calls never reach the house:
//!     nothing is applied or counted.
//!   - `lose_response_next`: the next n successful creates (201, or a 200 replay) are applied,
//!     then the connection is closed without the answer.
//! - `GET /_sim/ledger` → `{"shipments": […], "requests": {"<Idempotency-Key>": {"seen": n,
//!   "created": "SHP0000001"|null}}}`: every shipment, and per key how many creates the house
//!   saw with it (past the faults and the authentication) and what it created.
//!
//! State is in memory, shared by all requests, and lost on restart.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::webhook::{SIGNATURE_HEADER, TIMESTAMP_HEADER, TrackingNotification};
use crate::sim_line::{self, Faults, FaultsPatch, RateWindow};

const MAX_KEY: usize = 255;
const MAX_ITEMS: usize = 10;
const MAX_QUANTITY: u64 = 10;
const ICCID_PREFIX: &str = "89459902";
/// The only card the house stocks.
const SKU: &str = "PSIM";

// ---- errors ----

#[derive(Debug)]
struct Problem {
    status: StatusCode,
    code: &'static str,
    message: String,
    fields: Vec<(String, String)>,
}

impl Problem {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            fields: Vec::new(),
        }
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    fn invalid(fields: Vec<(String, String)>) -> Self {
        Self {
            fields,
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                "The request is invalid",
            )
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = json!({ "code": self.code, "message": self.message });
        if !self.fields.is_empty() {
            let fields: Vec<Value> = self
                .fields
                .iter()
                .map(|(field, message)| json!({ "field": field, "message": message }))
                .collect();
            body["fields"] = Value::Array(fields);
        }
        let mut response = (self.status, axum::Json(body)).into_response();
        let retry_after = match self.status {
            StatusCode::TOO_MANY_REQUESTS => Some("1"),
            StatusCode::SERVICE_UNAVAILABLE => Some("30"),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

type Answer = Result<(StatusCode, axum::Json<Value>), Problem>;

fn json_body(body: &[u8]) -> Result<Value, Problem> {
    serde_json::from_slice(body).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("The body is not JSON: {e}"),
        )
    })
}

// ---- validation ----

/// Collects every problem of a body, by field path.
#[derive(Debug, Default)]
struct Check {
    problems: Vec<(String, String)>,
}

impl Check {
    fn fail(&mut self, field: &str, message: &str) {
        self.problems.push((field.to_owned(), message.to_owned()));
    }

    /// `value` must be an object with only `known` members.
    fn object<'v>(
        &mut self,
        value: Option<&'v Value>,
        field: &str,
        known: &[&str],
    ) -> Option<&'v Map<String, Value>> {
        let Some(value) = value else {
            self.fail(field, "is required");
            return None;
        };
        let Some(object) = value.as_object() else {
            self.fail(field, "must be an object");
            return None;
        };
        for member in object.keys().filter(|k| !known.contains(&k.as_str())) {
            let path = if field.is_empty() {
                member.clone()
            } else {
                format!("{field}.{member}")
            };
            self.fail(&path, "is not a known member");
        }
        Some(object)
    }

    /// A non-blank string of at most `max` characters.
    fn text<'v>(
        &mut self,
        object: &'v Map<String, Value>,
        name: &str,
        path: &str,
        max: usize,
    ) -> Option<&'v str> {
        match object.get(name) {
            None | Some(Value::Null) => self.fail(path, "is required"),
            Some(Value::String(text)) if text.trim().is_empty() => {
                self.fail(path, "must not be blank");
            }
            Some(Value::String(text)) if text.chars().count() > max => {
                self.fail(path, &format!("must be at most {max} characters"));
            }
            Some(Value::String(text)) => return Some(text),
            Some(_) => self.fail(path, "must be a string"),
        }
        None
    }
}

fn validate(body: &Value) -> Result<NewShipment, Problem> {
    let mut check = Check::default();
    let top = ["reference", "tenant", "recipient", "items"];
    if let Some(request) = check.object(Some(body), "", &top) {
        check.text(request, "reference", "reference", 255);
        check.text(request, "tenant", "tenant", 64);
        let fields = ["name", "street", "postalCode", "city", "country"];
        if let Some(recipient) = check.object(request.get("recipient"), "recipient", &fields) {
            for field in ["name", "street", "city"] {
                check.text(recipient, field, &format!("recipient.{field}"), 200);
            }
            check.text(recipient, "postalCode", "recipient.postalCode", 16);
            let country = check.text(recipient, "country", "recipient.country", 2);
            if country.is_some_and(|c| c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase())) {
                check.fail("recipient.country", "must be an ISO 3166 alpha-2 code");
            }
        }
        match request.get("items") {
            None | Some(Value::Null) => check.fail("items", "is required"),
            Some(Value::Array(items)) if items.is_empty() || items.len() > MAX_ITEMS => {
                check.fail("items", &format!("must have 1 to {MAX_ITEMS} items"));
            }
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let path = format!("items[{i}]");
                    let Some(item) = check.object(Some(item), &path, &["sku", "quantity"]) else {
                        continue;
                    };
                    let sku_path = format!("{path}.sku");
                    if let Some(sku) = check.text(item, "sku", &sku_path, 32)
                        && sku != SKU
                    {
                        check.fail(&sku_path, "is not stocked (only PSIM)");
                    }
                    let quantity_path = format!("{path}.quantity");
                    match item.get("quantity").map(Value::as_u64) {
                        None => check.fail(&quantity_path, "is required"),
                        Some(Some(n)) if (1..=MAX_QUANTITY).contains(&n) => {}
                        Some(_) => check.fail(
                            &quantity_path,
                            &format!("must be a whole number from 1 to {MAX_QUANTITY}"),
                        ),
                    }
                }
            }
            Some(_) => check.fail("items", "must be an array"),
        }
    }
    if !check.problems.is_empty() {
        return Err(Problem::invalid(check.problems));
    }
    serde_json::from_value(body.clone())
        .map_err(|e| Problem::invalid(vec![(String::new(), e.to_string())]))
}

// ---- the house's records ----

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Recipient {
    name: String,
    street: String,
    postal_code: String,
    city: String,
    country: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Item {
    sku: String,
    quantity: u32,
}

/// A create's body, validated.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
struct NewShipment {
    reference: String,
    tenant: String,
    recipient: Recipient,
    items: Vec<Item>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Created,
    Shipped,
    Delivered,
    Returned,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Shipped => "shipped",
            Self::Delivered => "delivered",
            Self::Returned => "returned",
        }
    }

    /// Whether a parcel in this status can move to `next`.
    fn can_become(self, next: Self) -> bool {
        matches!(
            (self, next),
            (Self::Created, Self::Shipped)
                | (Self::Shipped, Self::Delivered | Self::Returned)
                | (Self::Delivered, Self::Returned)
        )
    }
}

#[derive(Debug, Clone, Serialize)]
struct Event {
    seq: u64,
    status: Status,
    at: String,
}

#[derive(Debug)]
struct Shipment {
    id: String,
    /// As created; a replay must match it.
    request: NewShipment,
    iccids: Vec<String>,
    tracking_number: String,
    created_at: String,
    events: Vec<Event>,
}

impl Shipment {
    fn status(&self) -> Status {
        self.events.last().map_or(Status::Created, |e| e.status)
    }

    fn json(&self) -> Value {
        let r = &self.request;
        json!({
            "shipmentId": self.id,
            "reference": r.reference,
            "tenant": r.tenant,
            "recipient": r.recipient,
            "items": r.items,
            "status": self.status(),
            "iccids": self.iccids,
            "trackingNumber": self.tracking_number,
            "createdAt": self.created_at,
            "events": self.events,
        })
    }
}

/// `SHP0000001` for the first shipment.
fn shipment_id(index: usize) -> String {
    format!("SHP{:07}", index + 1)
}

fn shipment_index(id: &str) -> Option<usize> {
    let digits = id.strip_prefix("SHP")?;
    if digits.len() != 7 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<usize>().ok()?.checked_sub(1)
}

/// A UPU S10 item identifier: `RR`, the 8-digit serial, its check digit, `DK`.
fn tracking_number(serial: u32) -> String {
    const WEIGHTS: [u32; 8] = [8, 6, 4, 2, 3, 5, 9, 7];
    let digits = format!("{serial:08}");
    let sum: u32 = digits
        .bytes()
        .zip(WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    let check = match 11 - sum % 11 {
        10 => 0,
        11 => 5,
        n => n,
    };
    format!("RR{digits}{check}DK")
}

#[derive(Debug, Default)]
struct KeyLog {
    seen: u32,
    created: Option<usize>,
}

#[derive(Debug, Default)]
struct Books {
    shipments: Vec<Shipment>,
    keys: BTreeMap<String, KeyLog>,
    cards: u64,
}

impl Books {
    fn shipment_mut(&mut self, id: &str) -> Result<&mut Shipment, Problem> {
        shipment_index(id)
            .and_then(|i| self.shipments.get_mut(i))
            .ok_or_else(|| Problem::not_found(format!("Shipment {id} not found")))
    }

    fn create(&mut self, key: &str, body: &[u8], now: &str) -> Answer {
        let log = self.keys.entry(key.to_owned()).or_default();
        log.seen += 1;
        let earlier = log.created;
        let request = validate(&json_body(body)?)?;
        if let Some(index) = earlier {
            let shipment = &self.shipments[index];
            if shipment.request != request {
                return Err(Problem::new(
                    StatusCode::CONFLICT,
                    "idempotency_key_reused",
                    "The Idempotency-Key was used for a different request",
                ));
            }
            return Ok((StatusCode::OK, axum::Json(shipment.json())));
        }
        let cards: u64 = request.items.iter().map(|i| u64::from(i.quantity)).sum();
        let iccids = (self.cards + 1..=self.cards + cards)
            .map(|serial| sim_line::iccid(ICCID_PREFIX, serial))
            .collect();
        self.cards += cards;
        let index = self.shipments.len();
        let serial = u32::try_from(index + 1).expect("fewer shipments than that");
        let shipment = Shipment {
            id: shipment_id(index),
            request,
            iccids,
            tracking_number: tracking_number(serial),
            created_at: now.to_owned(),
            events: vec![Event {
                seq: 1,
                status: Status::Created,
                at: now.to_owned(),
            }],
        };
        let body = shipment.json();
        self.shipments.push(shipment);
        self.keys.get_mut(key).expect("counted above").created = Some(index);
        Ok((StatusCode::CREATED, axum::Json(body)))
    }

    fn ledger(&self) -> Value {
        let requests: Map<String, Value> = self
            .keys
            .iter()
            .map(|(key, log)| {
                let created = log.created.map(shipment_id);
                (key.clone(), json!({ "seen": log.seen, "created": created }))
            })
            .collect();
        json!({
            "shipments": self.shipments.iter().map(Shipment::json).collect::<Vec<_>>(),
            "requests": requests,
        })
    }
}

// ---- the API ----

fn idempotency_key(headers: &HeaderMap) -> Result<String, Problem> {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or_default();
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "idempotency_key_required",
            format!("The Idempotency-Key header is required (1 to {MAX_KEY} characters)"),
        ));
    }
    Ok(key.to_owned())
}

async fn create_shipment(State(sim): State<Sim>, headers: HeaderMap, body: Bytes) -> Answer {
    let key = idempotency_key(&headers)?;
    let now = sim_line::utc_now();
    sim.lock().books.create(&key, &body, &now)
}

async fn get_shipment(State(sim): State<Sim>, Path(id): Path<String>) -> Answer {
    let books = &mut sim.lock().books;
    Ok((StatusCode::OK, axum::Json(books.shipment_mut(&id)?.json())))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    after: Option<u64>,
}

async fn get_events(
    State(sim): State<Sim>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Answer {
    let query: EventsQuery = serde_urlencoded::from_str(query.as_deref().unwrap_or_default())
        .map_err(|e| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                format!("Invalid query: {e}"),
            )
        })?;
    let books = &mut sim.lock().books;
    let shipment = books.shipment_mut(&id)?;
    let after = query.after.unwrap_or(0);
    let events: Vec<&Event> = shipment.events.iter().filter(|e| e.seq > after).collect();
    Ok((StatusCode::OK, axum::Json(json!({ "events": events }))))
}

async fn health() -> Response {
    axum::Json(json!({ "status": "UP" })).into_response()
}

async fn unknown() -> Response {
    Problem::not_found("Not found").into_response()
}

async fn method_not_allowed() -> Response {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "Method not allowed",
    )
    .into_response()
}

async fn authenticate(request: Request, next: Next) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, token)| {
            scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()
        });
    if token.is_none() {
        return Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "A bearer token is required",
        )
        .into_response();
    }
    next.run(request).await
}

// ---- faults ----

// ---- the simulator ----

#[derive(Debug, Default)]
struct SimState {
    books: Books,
    faults: Faults,
    window: RateWindow,
    subscriptions: Vec<WebhookSubscription>,
    /// Every webhook delivery: notification id, URL, attempts, the last HTTP status.
    deliveries: Vec<Value>,
    notifications: u64,
}

/// Where tracking notifications go.
#[derive(Debug, Clone)]
struct WebhookSubscription {
    id: String,
    url: String,
    secret: String,
    /// Only this tenant's shipments; `None`: every shipment.
    tenant: Option<String>,
}

/// How often a notification is delivered before the house gives up on it.
const WEBHOOK_ATTEMPTS: u32 = 5;

#[derive(Debug, Clone, Default)]
struct Sim(Arc<Mutex<SimState>>);

impl Sim {
    /// The state; a panic elsewhere while holding the lock leaves it usable.
    fn lock(&self) -> MutexGuard<'_, SimState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn outage_gate(State(sim): State<Sim>, request: Request, next: Next) -> Response {
    if sim.lock().faults.outage {
        return Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "The fulfilment API is temporarily unavailable",
        )
        .into_response();
    }
    next.run(request).await
}

/// The rate limit, latency, hangs and failures before a call reaches the house.
async fn api_faults(State(sim): State<Sim>, request: Request, next: Next) -> Response {
    let (admitted, latency) = {
        let state = &mut *sim.lock();
        let limit = state.faults.rate_limit_per_second;
        (
            state.window.admit(limit, Instant::now()),
            state.faults.latency_ms,
        )
    };
    if !admitted {
        return Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Too many requests",
        )
        .into_response();
    }
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let (hang, fail) = {
        let faults = &mut sim.lock().faults;
        let hang = sim_line::take(&mut faults.timeout_next);
        (hang, !hang && sim_line::take(&mut faults.fail_next))
    };
    if hang {
        return sim_line::hang(sim_line::hang_up_switch(&request)).await;
    }
    if fail {
        return Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Internal error",
        )
        .into_response();
    }
    next.run(request).await
}

/// Around a create: applies it, then, while `lose_response_next` lasts, loses a successful
/// answer.
async fn lose_answer(State(sim): State<Sim>, request: Request, next: Next) -> Response {
    let switch = sim_line::hang_up_switch(&request);
    let response = next.run(request).await;
    if let Some(switch) = switch
        && response.status().is_success()
        && sim_line::take(&mut sim.lock().faults.lose_response_next)
    {
        switch.now();
    }
    response
}

// ---- simulator controls ----

fn faults_answer(faults: &Faults) -> Answer {
    Ok((StatusCode::OK, axum::Json(json!(faults))))
}

async fn get_faults(State(sim): State<Sim>) -> Answer {
    faults_answer(&sim.lock().faults)
}

async fn set_faults(State(sim): State<Sim>, body: Bytes) -> Answer {
    let patch: FaultsPatch = serde_json::from_slice(&body).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("Invalid faults: {e}"),
        )
    })?;
    let faults = &mut sim.lock().faults;
    faults.patch(patch);
    faults_answer(faults)
}

async fn clear_faults(State(sim): State<Sim>) -> Answer {
    let state = &mut *sim.lock();
    state.faults = Faults::default();
    state.window = RateWindow::default();
    faults_answer(&state.faults)
}

async fn ledger(State(sim): State<Sim>) -> Answer {
    let state = sim.lock();
    let mut ledger = state.books.ledger();
    ledger["webhookDeliveries"] = Value::Array(state.deliveries.clone());
    Ok((StatusCode::OK, axum::Json(ledger)))
}

fn advance_in(books: &mut Books, id: &str, body: &[u8], now: &str) -> Answer {
    let body = json_body(body)?;
    let mut check = Check::default();
    let status = check
        .object(Some(&body), "", &["status"])
        .and_then(|object| check.text(object, "status", "status", 16))
        .map(str::to_owned);
    let next = match status.as_deref() {
        Some("shipped") => Some(Status::Shipped),
        Some("delivered") => Some(Status::Delivered),
        Some("returned") => Some(Status::Returned),
        Some(_) => {
            check.fail("status", "must be shipped, delivered or returned");
            None
        }
        None => None,
    };
    let (Some(next), true) = (next, check.problems.is_empty()) else {
        return Err(Problem::invalid(check.problems));
    };
    let shipment = books.shipment_mut(id)?;
    let current = shipment.status();
    if !current.can_become(next) {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "invalid_transition",
            format!("A {} parcel cannot become {}", current.name(), next.name()),
        ));
    }
    let seq = shipment.events.last().map_or(0, |e| e.seq) + 1;
    shipment.events.push(Event {
        seq,
        status: next,
        at: now.to_owned(),
    });
    Ok((StatusCode::OK, axum::Json(shipment.json())))
}

async fn advance(State(sim): State<Sim>, Path(id): Path<String>, body: Bytes) -> Answer {
    let now = sim_line::utc_now();
    let mut state = sim.lock();
    let answer = advance_in(&mut state.books, &id, &body, &now)?;
    let outgoing = notifications_for(&mut state, &id);
    drop(state);
    for (subscription, notification) in outgoing {
        tokio::spawn(deliver(sim.clone(), subscription, notification));
    }
    Ok(answer)
}

/// The notification of shipment `id`'s newest event, for each subscription it concerns.
fn notifications_for(state: &mut SimState, id: &str) -> Vec<(WebhookSubscription, Vec<u8>)> {
    let Ok(shipment) = state.books.shipment_mut(id) else {
        return Vec::new();
    };
    let Some(event) = shipment.events.last().cloned() else {
        return Vec::new();
    };
    let (reference, tenant) = (
        shipment.request.reference.clone(),
        shipment.request.tenant.clone(),
    );
    let subscribed: Vec<WebhookSubscription> = state
        .subscriptions
        .iter()
        .filter(|s| s.tenant.as_ref().is_none_or(|t| *t == tenant))
        .cloned()
        .collect();
    if subscribed.is_empty() {
        return Vec::new();
    }
    state.notifications += 1;
    let notification = TrackingNotification {
        id: format!("whe_{:07}", state.notifications),
        kind: "shipment.tracking".to_owned(),
        shipment_id: id.to_owned(),
        reference,
        tenant,
        seq: event.seq,
        status: event.status.name().to_owned(),
        at: event.at,
    };
    let body = serde_json::to_vec(&notification).expect("a notification serialises");
    subscribed.into_iter().map(|s| (s, body.clone())).collect()
}

/// Delivers one notification (see [`sim_line::deliver_webhook`]) and records what happened
/// in the ledger.
async fn deliver(sim: Sim, subscription: WebhookSubscription, body: Vec<u8>) {
    let notification: Value = serde_json::from_slice(&body).unwrap_or_default();
    let (attempts, last_status) = sim_line::deliver_webhook(
        &subscription.url,
        &subscription.secret,
        (TIMESTAMP_HEADER, SIGNATURE_HEADER),
        &body,
        WEBHOOK_ATTEMPTS,
    )
    .await;
    sim.lock().deliveries.push(json!({
        "notification": notification["id"],
        "subscription": subscription.id,
        "url": subscription.url,
        "attempts": attempts,
        "status": last_status,
    }));
}

/// `POST /v1/webhook-subscriptions` `{url, secret, tenant?}`.
async fn subscribe(State(sim): State<Sim>, body: Bytes) -> Answer {
    let body = json_body(&body)?;
    let mut check = Check::default();
    let object = check.object(Some(&body), "", &["url", "secret", "tenant"]);
    let (url, secret, tenant) = match object {
        Some(object) => {
            let url = check.text(object, "url", "url", 2048).map(str::to_owned);
            let secret = check
                .text(object, "secret", "secret", 255)
                .map(str::to_owned);
            let tenant = match object.get("tenant") {
                None | Some(Value::Null) => None,
                Some(_) => check
                    .text(object, "tenant", "tenant", 64)
                    .map(str::to_owned),
            };
            (url, secret, tenant)
        }
        None => (None, None, None),
    };
    if let Some(url) = &url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        check.fail("url", "must be an http(s) URL");
    }
    let (Some(url), Some(secret), true) = (url, secret, check.problems.is_empty()) else {
        return Err(Problem::invalid(check.problems));
    };
    let mut state = sim.lock();
    let id = format!("whs_{:04}", state.subscriptions.len() + 1);
    // Subscribing a URL again replaces its subscription (a new secret), never doubles it.
    state
        .subscriptions
        .retain(|s| !(s.url == url && s.tenant == tenant));
    state.subscriptions.push(WebhookSubscription {
        id: id.clone(),
        url: url.clone(),
        secret,
        tenant: tenant.clone(),
    });
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"id": id, "url": url, "tenant": tenant})),
    ))
}

fn router(sim: Sim) -> Router {
    let lose = middleware::from_fn_with_state(sim.clone(), lose_answer);
    let api = Router::new()
        .route("/v1/shipments", post(create_shipment).layer(lose))
        .route("/v1/shipments/{id}", get(get_shipment))
        .route("/v1/shipments/{id}/events", get(get_events))
        .route("/v1/webhook-subscriptions", post(subscribe))
        .route_layer(middleware::from_fn(authenticate))
        .route_layer(middleware::from_fn_with_state(sim.clone(), api_faults));
    let served = api
        .route("/healthz", get(health))
        .fallback(unknown)
        .layer(middleware::from_fn_with_state(sim.clone(), outage_gate));
    let controls = Router::new()
        .route(
            "/_sim/faults",
            get(get_faults).post(set_faults).delete(clear_faults),
        )
        .route("/_sim/ledger", get(ledger))
        .route("/_sim/shipments/{id}/advance", post(advance));
    served
        .merge(controls)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(sim)
}

/// Binds the simulator and serves it until `shutdown`; tells `on_bound` the bound address
/// first.
///
/// # Errors
/// The address cannot be bound.
pub async fn serve(
    listen: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_bound: impl FnOnce(SocketAddr),
) -> io::Result<()> {
    let router = router(Sim::default());
    sim_line::serve("SIM logistics", listen, router, shutdown, on_bound).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracking_numbers_carry_the_s10_check_digit() {
        // 4·8 + 7·6 + 3·4 + 1·2 + 2·3 + 4·5 + 8·9 + 2·7 = 200; 200 mod 11 = 2; 11 − 2 = 9.
        assert_eq!(tracking_number(47_312_482), "RR473124829DK");
        // 1·7 = 7: 11 − 7 = 4.
        assert_eq!(tracking_number(1), "RR000000014DK");
        // 8·7 = 56 ≡ 1: 11 − 1 = 10, written 0.
        assert_eq!(tracking_number(8), "RR000000080DK");
        // 0 ≡ 0: 11 − 0 = 11, written 5.
        assert_eq!(tracking_number(0), "RR000000005DK");
    }

    #[test]
    fn shipment_ids_round_trip() {
        assert_eq!(shipment_id(0), "SHP0000001");
        assert_eq!(shipment_index("SHP0000012"), Some(11));
        for bad in ["SHP0000000", "SHP1", "shp0000001", "SHP+000001"] {
            assert_eq!(shipment_index(bad), None, "{bad}");
        }
    }

    #[test]
    fn moves() {
        use Status::*;
        assert!(Created.can_become(Shipped));
        assert!(Shipped.can_become(Delivered));
        assert!(Shipped.can_become(Returned));
        assert!(Delivered.can_become(Returned));
        for (from, to) in [
            (Created, Delivered),
            (Created, Returned),
            (Shipped, Shipped),
            (Delivered, Shipped),
            (Returned, Shipped),
            (Returned, Delivered),
            (Returned, Returned),
        ] {
            assert!(!from.can_become(to), "{from:?} → {to:?}");
        }
    }

    #[test]
    fn every_problem_of_a_body_is_listed() {
        let body = json!({
            "reference": " ",
            "tenant": 7,
            "recipient": {"name": "Freja", "street": "Nørregade 1", "city": "København",
                          "country": "dk", "floor": 2},
            "items": [{"sku": "ESIM", "quantity": 0}, "x"],
            "extra": true,
        });
        let problem = validate(&body).unwrap_err();
        let fields: Vec<&str> = problem.fields.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "extra",
                "reference",
                "tenant",
                "recipient.floor",
                "recipient.postalCode",
                "recipient.country",
                "items[0].sku",
                "items[0].quantity",
                "items[1]",
            ]
        );
    }
}
