//! An Adyen simulator for tests and the local run (`tcom adyen-sim`). It speaks the parts of
//! Adyen's APIs the platform uses, written from Adyen's documented shapes (not from the
//! client's types, so that the two cannot agree by construction):
//!
//! - Checkout API v71: `POST /v71/sessions` (Hosted Checkout: the answer carries a `url`;
//!   `expiresAt` honoured, default one hour, at most 24 hours; `additionalData.manualCapture`
//!   or else captured at authorisation, as an account with immediate capture does),
//!   `GET /v71/sessions/{id}?sessionResult=…` (`active`, `completed`, `expired`), and the
//!   asynchronous modifications `POST /v71/payments/{pspReference}/captures|cancels|refunds`
//!   (201, `status: received`; the webhook's `merchantReference` is the request's `reference`,
//!   as live Adyen echoes it); `X-API-Key` authentication, `Idempotency-Key` replay, Adyen's
//!   error body `{status, errorCode, message, errorType}`.
//! - Management API v3: `POST /v3/merchants/{merchantId}/webhooks` (a standard webhook, JSON)
//!   and `POST /v3/merchants/{merchantId}/webhooks/{id}/generateHmac`.
//! - Standard webhooks: one item per notification, HMAC-signed when the endpoint has a key
//!   (the eight fields joined by `:` as they are, as Adyen's libraries compute it), basic auth
//!   when configured, retried with backoff until the endpoint answers 2xx with `[accepted]`.
//!
//! The shopper's side is simulator-only: the hosted page `/_sim/checkout/{id}` (Pay, Refuse,
//! 3-D Secure) and the challenge `/_sim/3ds/{id}`. A refused attempt leaves the shopper on the
//! page to try another card until the session expires; every attempt is a payment of its own,
//! with its own pspReference and `AUTHORISATION` webhook. A paid session is `completed`. So are the controls: `/_sim/faults`,
//! `/_sim/ledger`, `/_sim/events` and `/_sim/webhooks/resend/{n}`.
//!
//! Each (API key, merchant account) pair is an account of its own, created on first use, so
//! tests and tenants sharing one simulator never see each other's payments. State lives in
//! memory only.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Deliveries of one notification to one endpoint before the simulator gives up.
const MAX_ATTEMPTS: usize = 8;

/// The wait before attempt 2, 3, …: short, so that tests see retries within seconds.
const RETRY_DELAYS: [Duration; MAX_ATTEMPTS - 1] = [
    Duration::from_millis(200),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
    Duration::from_secs(16),
];

/// How long `reorder_webhooks` holds a payment's notifications before sending them newest
/// first.
const REORDER_HOLD: Duration = Duration::from_millis(300);

/// Adyen's default: a session expires one hour after it is created.
const SESSION_LIFETIME_MS: u64 = 3_600_000;

/// Adyen refuses a session that would live longer than 24 hours.
const MAX_SESSION_LIFETIME_MS: u64 = 24 * 3_600_000;

/// What an endpoint must answer for a delivery to count.
const ACCEPTED_BODY: &str = "[accepted]";

/// (API key, merchant account).
type AccountKey = (String, String);

#[derive(Debug, Default)]
struct Account {
    /// In creation order, for the ledger.
    sessions: Vec<Session>,
    payments: HashMap<String, Payment>,
    /// Idempotency key → the first answer, replayed for the same request.
    replays: HashMap<String, Replay>,
    webhooks: Vec<Endpoint>,
}

#[derive(Debug, Clone)]
struct Replay {
    /// The path and body of the first request; a different one under the same key is an
    /// error.
    fingerprint: Value,
    status: StatusCode,
    body: Value,
}

#[derive(Debug)]
struct Session {
    id: String,
    merchant_account: String,
    amount: i64,
    currency: String,
    reference: String,
    return_url: String,
    shopper_reference: Option<String>,
    store_method: bool,
    /// `additionalData.manualCapture: "true"`; otherwise a payment is captured when authorised.
    manual_capture: bool,
    /// `active` (payable, also after a refused attempt), `completed` (paid), `expired`.
    status: &'static str,
    /// Milliseconds since the epoch.
    expires_at_ms: u64,
    /// One payment per attempt, oldest first.
    psp_references: Vec<String>,
    idempotency_keys: Vec<String>,
}

#[derive(Debug)]
struct Payment {
    merchant_account: String,
    amount: i64,
    currency: String,
    reference: String,
    authorised: bool,
    /// Captured at authorisation (the session did not ask for manual capture).
    auto_captured: bool,
    cancelled: bool,
    captured: i64,
    refunded: i64,
    idempotency_keys: Vec<String>,
}

impl Payment {
    fn status(&self) -> &'static str {
        if !self.authorised {
            "Refused"
        } else if self.cancelled {
            "Cancelled"
        } else if self.refunded > 0 {
            "Refunded"
        } else if self.captured > 0 {
            "Captured"
        } else {
            "Authorised"
        }
    }
}

#[derive(Debug, Clone)]
struct Endpoint {
    id: String,
    url: String,
    active: bool,
    username: Option<String>,
    password: Option<String>,
    description: Option<String>,
    hmac_key: Option<String>,
}

#[derive(Debug)]
struct NotificationRecord {
    account: AccountKey,
    /// The payment the event is about (for a modification, its `originalReference`).
    payment_psp: String,
    /// The item without `hmacSignature`, which depends on the endpoint.
    item: Value,
    deliveries: Vec<Delivery>,
}

#[derive(Debug)]
struct Delivery {
    endpoint_id: String,
    url: String,
    username: Option<String>,
    password: Option<String>,
    /// `original`, `duplicate` or `resend`.
    cause: &'static str,
    /// Signed once, when the delivery starts, as Adyen signs when it generates the payload.
    body: String,
    attempts: Vec<Attempt>,
    delivered: bool,
}

#[derive(Debug, Serialize)]
struct Attempt {
    at: String,
    status: Option<u16>,
    body: String,
    error: Option<String>,
}

/// Simulator-only faults; a POST to `/_sim/faults` replaces them all.
#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
#[serde(default)]
struct Faults {
    /// The next n API calls answer 500 without doing anything.
    fail_next_requests: u32,
    /// Added before every API call.
    latency_ms: u64,
    /// Each notification is delivered this many extra times.
    duplicate_webhooks: u32,
    /// A payment's notifications are held briefly and delivered newest first.
    reorder_webhooks: bool,
}

#[derive(Debug, Default)]
struct SimState {
    accounts: HashMap<AccountKey, Account>,
    /// The hosted pages carry no API key: they find the session's account here.
    session_owner: HashMap<String, AccountKey>,
    /// Notification n is at index n - 1.
    notifications: Vec<NotificationRecord>,
    /// (account, payment) → notifications waiting for `reorder_webhooks`.
    held: HashMap<(AccountKey, String), Vec<usize>>,
    faults: Faults,
}

#[derive(Debug, Clone)]
struct Sim {
    state: Arc<Mutex<SimState>>,
    base_url: Arc<str>,
    http: reqwest::Client,
}

impl Sim {
    fn lock(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().expect("simulator lock")
    }
}

/// What a successful API call did: the answer, and the notifications to send once the lock
/// is released.
#[derive(Debug)]
struct Applied {
    status: StatusCode,
    body: Value,
    notify: Vec<usize>,
}

/// An error answer. Boxed: a `Response` is large, and errors travel through many `Result`s.
#[derive(Debug)]
struct Rejection(Box<Response>);

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        *self.0
    }
}

impl<T: IntoResponse> From<(StatusCode, T)> for Rejection {
    fn from(answer: (StatusCode, T)) -> Self {
        Self(Box::new(answer.into_response()))
    }
}

// ---------------------------------------------------------------------------------------
// Small helpers: time, ids, errors.

fn now_secs() -> u64 {
    now_ms() / 1000
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the days-from-civil algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// An RFC 3339 instant (`2025-03-01T12:00:00Z`, `…T12:00:00.250+01:00`) as milliseconds since
/// the epoch; `None` when it is not one, or before 1970.
fn parse_rfc3339_ms(text: &str) -> Option<u64> {
    let number = |part: &str| -> Option<i64> {
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (date, time) = text.split_once(['T', 't'])?;
    let mut date_parts = date.splitn(3, '-');
    let (year, month, day) = (
        number(date_parts.next()?)?,
        number(date_parts.next()?)?,
        number(date_parts.next()?)?,
    );
    if date.len() != 10 || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    // The offset: `Z`, or `±hh:mm` after the seconds.
    let (clock, offset_minutes) = if let Some(clock) = time.strip_suffix(['Z', 'z']) {
        (clock, 0)
    } else {
        let at = time.rfind(['+', '-'])?;
        let (clock, offset) = time.split_at(at);
        let (hours, minutes) = offset[1..].split_once(':')?;
        let minutes = number(hours)? * 60 + number(minutes)?;
        (
            clock,
            if offset.starts_with('-') {
                -minutes
            } else {
                minutes
            },
        )
    };
    let (whole, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let mut hms = whole.splitn(3, ':');
    let (hour, minute, second) = (
        number(hms.next()?)?,
        number(hms.next()?)?,
        number(hms.next()?)?,
    );
    if whole.len() != 8 || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let millis = if fraction.is_empty() {
        0
    } else {
        number(fraction)?;
        format!("{fraction:0<3}")[..3].parse::<i64>().ok()?
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    u64::try_from(secs * 1000 + millis).ok()
}

/// `YYYY-MM-DDThh:mm:ss+00:00` (the civil-from-days algorithm; no date crate needed).
fn rfc3339(unix: u64) -> String {
    let days = i64::try_from(unix / 86_400).unwrap_or(0);
    let secs = unix % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}+00:00")
}

fn random_hex(chars: usize) -> String {
    let mut out = String::with_capacity(chars + 32);
    while out.len() < chars {
        out.push_str(&uuid::Uuid::new_v4().simple().to_string().to_uppercase());
    }
    out.truncate(chars);
    out
}

/// Adyen's pspReference is 16 characters.
fn new_psp_reference() -> String {
    random_hex(16)
}

/// Which account a ledger row belongs to, without showing the API key.
fn account_hash((api_key, merchant): &AccountKey) -> String {
    let digest = Sha256::digest(format!("{api_key}\n{merchant}").as_bytes());
    hex::encode(digest)[..12].to_owned()
}

/// Adyen's Checkout error body.
fn adyen_error(status: StatusCode, code: &str, message: &str, error_type: &str) -> Rejection {
    let body = json!({
        "status": status.as_u16(),
        "errorCode": code,
        "message": message,
        "errorType": error_type,
        "pspReference": new_psp_reference(),
    });
    (status, Json(body)).into()
}

fn validation(code: &str, message: &str) -> Rejection {
    adyen_error(
        StatusCode::UNPROCESSABLE_ENTITY,
        code,
        message,
        "validation",
    )
}

fn missing(field: &str) -> Rejection {
    validation("100", &format!("Required field '{field}' is not provided."))
}

/// The Management API answers in RFC 7807 form.
fn problem(status: StatusCode, detail: &str) -> Rejection {
    let body = json!({
        "type": "https://docs.adyen.com/errors/validation",
        "title": if status == StatusCode::NOT_FOUND { "Not found" } else { "Invalid request" },
        "status": status.as_u16(),
        "detail": detail,
        "errorCode": format!("00_{}", status.as_u16()),
        "requestId": new_psp_reference(),
    });
    (status, Json(body)).into()
}

/// Adyen's API keys start with `AQE`; anything else is refused as Adyen refuses a wrong key.
fn authenticate(headers: &HeaderMap) -> Result<String, Rejection> {
    match headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        Some(key) if key.starts_with("AQE") => Ok(key.to_owned()),
        _ => Err(adyen_error(
            StatusCode::UNAUTHORIZED,
            "000",
            "HTTP Status Response - Unauthorized",
            "security",
        )),
    }
}

fn parse_body(body: &Bytes) -> Result<Value, Rejection> {
    match serde_json::from_slice::<Value>(body) {
        Ok(value) if value.is_object() => Ok(value),
        Ok(_) => Err(adyen_error(
            StatusCode::BAD_REQUEST,
            "702",
            "Structure of the request is invalid: expected an object",
            "validation",
        )),
        Err(e) => Err(adyen_error(
            StatusCode::BAD_REQUEST,
            "702",
            &format!("Unable to parse message: {e}"),
            "validation",
        )),
    }
}

fn str_field<'a>(body: &'a Value, field: &str) -> Option<&'a str> {
    body.get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn required<'a>(body: &'a Value, field: &str) -> Result<&'a str, Rejection> {
    str_field(body, field).ok_or_else(|| missing(field))
}

/// `amount: {value, currency}` with a positive value and a three-letter currency.
fn amount_field(body: &Value) -> Result<(i64, String), Rejection> {
    let amount = body
        .get("amount")
        .filter(|a| a.is_object())
        .ok_or_else(|| validation("100", "Required object 'amount' is not provided."))?;
    let value = amount.get("value").and_then(Value::as_i64);
    let Some(value) = value.filter(|v| *v > 0) else {
        return Err(validation("137", "Invalid amount specified"));
    };
    let currency = amount.get("currency").and_then(Value::as_str).unwrap_or("");
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(validation("138", "Unsupported currency specified"));
    }
    Ok((value, currency.to_owned()))
}

fn idempotency_key(headers: &HeaderMap) -> Option<String> {
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
}

fn json_response(status: StatusCode, body: Value, idempotency_key: Option<&str>) -> Response {
    let mut response = (status, Json(body)).into_response();
    // Adyen echoes the key so that a client can tell the request was handled idempotently.
    if let Some(value) = idempotency_key.and_then(|k| HeaderValue::from_str(k).ok()) {
        response.headers_mut().insert("idempotency-key", value);
    }
    response
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

// ---------------------------------------------------------------------------------------
// Webhook signing: the simulator's own implementation of Adyen's standard-webhook HMAC.

/// The eight signed fields of an item, in Adyen's order.
const SIGNED_FIELDS: [&str; 8] = [
    "pspReference",
    "originalReference",
    "merchantAccountCode",
    "merchantReference",
    "amount.value",
    "amount.currency",
    "eventCode",
    "success",
];

fn signed_field(item: &Value, field: &str) -> String {
    let value = match field.split_once('.') {
        Some((outer, inner)) => &item[outer][inner],
        None => &item[field],
    };
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// Base64 HMAC-SHA256 of the `:`-joined fields, each as it is (Adyen's libraries do not
/// escape a `:` inside a value), keyed with the hex-decoded key.
fn sign_item(item: &Value, key_hex: &str) -> Option<String> {
    let key = hex::decode(key_hex).ok()?;
    let payload = SIGNED_FIELDS
        .iter()
        .map(|field| signed_field(item, field))
        .collect::<Vec<_>>()
        .join(":");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(payload.as_bytes());
    Some(BASE64.encode(mac.finalize().into_bytes()))
}

// ---------------------------------------------------------------------------------------
// Notifications and their delivery.

/// One event about a payment, before it becomes a notification item.
#[derive(Debug)]
struct Event<'a> {
    code: &'static str,
    psp_reference: &'a str,
    original_reference: Option<&'a str>,
    /// The session's `reference` for an `AUTHORISATION`; the modification request's own
    /// `reference` for a modification.
    merchant_reference: &'a str,
    payment: &'a Payment,
    amount: i64,
    success: bool,
    reason: Option<&'a str>,
    additional: Value,
}

fn notification_item(event: Event<'_>) -> Value {
    let mut item = json!({
        "additionalData": event.additional,
        "amount": {"currency": event.payment.currency, "value": event.amount},
        "eventCode": event.code,
        "eventDate": rfc3339(now_secs()),
        "merchantAccountCode": event.payment.merchant_account,
        "merchantReference": event.merchant_reference,
        "paymentMethod": "visa",
        "pspReference": event.psp_reference,
        "success": if event.success { "true" } else { "false" },
    });
    if let Some(original) = event.original_reference {
        item["originalReference"] = json!(original);
    }
    if let Some(reason) = event.reason {
        item["reason"] = json!(reason);
    }
    if event.code == "AUTHORISATION" && event.success {
        item["operations"] = json!(["CANCEL", "CAPTURE", "REFUND"]);
    }
    item
}

impl SimState {
    fn push_notification(&mut self, account: &AccountKey, payment_psp: &str, item: Value) -> usize {
        self.notifications.push(NotificationRecord {
            account: account.clone(),
            payment_psp: payment_psp.to_owned(),
            item,
            deliveries: Vec::new(),
        });
        self.notifications.len()
    }

    /// Starts a delivery of notification `n` to every active endpoint of its account;
    /// returns (n, delivery index) pairs.
    fn start_deliveries(&mut self, n: usize, cause: &'static str) -> Vec<(usize, usize)> {
        let Some(record) = self.notifications.get(n - 1) else {
            return Vec::new();
        };
        let endpoints: Vec<Endpoint> = self
            .accounts
            .get(&record.account)
            .map(|a| a.webhooks.iter().filter(|e| e.active).cloned().collect())
            .unwrap_or_default();
        let item = record.item.clone();
        let record = &mut self.notifications[n - 1];
        endpoints
            .into_iter()
            .map(|endpoint| {
                record.deliveries.push(delivery(&item, endpoint, cause));
                (n, record.deliveries.len() - 1)
            })
            .collect()
    }
}

fn delivery(item: &Value, endpoint: Endpoint, cause: &'static str) -> Delivery {
    let mut item = item.clone();
    if let Some(signature) = endpoint
        .hmac_key
        .as_deref()
        .and_then(|k| sign_item(&item, k))
    {
        item["additionalData"]["hmacSignature"] = json!(signature);
    }
    let body = json!({
        "live": "false",
        "notificationItems": [{"NotificationRequestItem": item}],
    });
    Delivery {
        endpoint_id: endpoint.id,
        url: endpoint.url,
        username: endpoint.username,
        password: endpoint.password,
        cause,
        body: body.to_string(),
        attempts: Vec::new(),
        delivered: false,
    }
}

impl Sim {
    /// Sends new notifications, applying the webhook faults.
    fn dispatch(&self, notifications: Vec<usize>) {
        if notifications.is_empty() {
            return;
        }
        let faults = self.lock().faults;
        if faults.reorder_webhooks {
            notifications.into_iter().for_each(|n| self.hold(n));
            return;
        }
        for n in notifications {
            for (n, d) in self.start_all(n, faults.duplicate_webhooks) {
                tokio::spawn(run_delivery(self.clone(), n, d, 0));
            }
        }
    }

    /// One original delivery per endpoint, and the duplicates the faults ask for.
    fn start_all(&self, n: usize, duplicates: u32) -> Vec<(usize, usize)> {
        let mut state = self.lock();
        let mut started = state.start_deliveries(n, "original");
        for _ in 0..duplicates {
            started.extend(state.start_deliveries(n, "duplicate"));
        }
        started
    }

    /// Holds `n` with the other notifications of its payment; the first one held starts the
    /// timer that sends them all, newest first.
    fn hold(&self, n: usize) {
        let mut state = self.lock();
        let Some(record) = state.notifications.get(n - 1) else {
            return;
        };
        let key = (record.account.clone(), record.payment_psp.clone());
        let waiting = state.held.entry(key.clone()).or_default();
        waiting.push(n);
        if waiting.len() == 1 {
            tokio::spawn(release_held(self.clone(), key));
        }
    }

    fn delivery_request(&self, n: usize, d: usize) -> Option<reqwest::RequestBuilder> {
        let state = self.lock();
        let delivery = state.notifications.get(n - 1)?.deliveries.get(d)?;
        let mut request = self
            .http
            .post(&delivery.url)
            .header("content-type", "application/json")
            .body(delivery.body.clone());
        if let Some(user) = &delivery.username {
            request = request.basic_auth(user, delivery.password.as_deref());
        }
        Some(request)
    }

    fn record_attempt(&self, n: usize, d: usize, attempt: Attempt, delivered: bool) {
        let mut state = self.lock();
        if let Some(delivery) = state
            .notifications
            .get_mut(n - 1)
            .and_then(|r| r.deliveries.get_mut(d))
        {
            delivery.attempts.push(attempt);
            delivery.delivered |= delivered;
        }
    }
}

async fn release_held(sim: Sim, key: (AccountKey, String)) {
    tokio::time::sleep(REORDER_HOLD).await;
    let (waiting, duplicates) = {
        let mut state = sim.lock();
        let waiting = state.held.remove(&key).unwrap_or_default();
        (waiting, state.faults.duplicate_webhooks)
    };
    for n in waiting.into_iter().rev() {
        for (n, d) in sim.start_all(n, duplicates) {
            // The first attempt in order, so that the endpoint really sees newest first.
            if !attempt_delivery(&sim, n, d).await {
                tokio::spawn(run_delivery(sim.clone(), n, d, 1));
            }
        }
    }
}

/// Attempts `from + 1 …` of delivery `d` of notification `n`, until one is accepted.
async fn run_delivery(sim: Sim, n: usize, d: usize, from: usize) {
    for attempt in from..MAX_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(RETRY_DELAYS[attempt - 1]).await;
        }
        if attempt_delivery(&sim, n, d).await {
            return;
        }
    }
    tracing::warn!(
        notification = n,
        attempts = MAX_ATTEMPTS,
        "Adyen simulator gave up delivering a webhook."
    );
}

/// One POST of the notification; whether the endpoint accepted it.
async fn attempt_delivery(sim: &Sim, n: usize, d: usize) -> bool {
    let Some(request) = sim.delivery_request(n, d) else {
        return true;
    };
    let at = rfc3339(now_secs());
    let (status, body, error) = match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            (
                Some(status),
                response.text().await.unwrap_or_default(),
                None,
            )
        }
        Err(e) => (None, String::new(), Some(e.to_string())),
    };
    let accepted = status.is_some_and(|s| (200..300).contains(&s)) && body.trim() == ACCEPTED_BODY;
    let attempt = Attempt {
        at,
        status,
        body,
        error,
    };
    sim.record_attempt(n, d, attempt, accepted);
    accepted
}

// ---------------------------------------------------------------------------------------
// API middleware: faults first, as a failing Adyen does nothing at all.

async fn api_faults(State(sim): State<Sim>, request: Request, next: Next) -> Response {
    let (latency, fail) = {
        let mut state = sim.lock();
        let fail = state.faults.fail_next_requests > 0;
        if fail {
            state.faults.fail_next_requests -= 1;
        }
        (state.faults.latency_ms, fail)
    };
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    if fail {
        return adyen_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "905",
            "Internal error (simulated fault)",
            "internal",
        )
        .into_response();
    }
    next.run(request).await
}

impl Sim {
    /// Runs `apply` once per idempotency key: a repeat with the same path and body gets the
    /// first answer again, a repeat with a different one an error. Only successes are kept,
    /// so a request that failed may be retried under the same key.
    fn idempotent(
        &self,
        account: &AccountKey,
        key: Option<&str>,
        fingerprint: Value,
        apply: impl FnOnce(&mut SimState) -> Result<Applied, Rejection>,
    ) -> Result<Response, Rejection> {
        let (response, notify) = {
            let mut state = self.lock();
            let replay = key.and_then(|k| state.accounts.get(account)?.replays.get(k).cloned());
            if let Some(replay) = replay {
                if replay.fingerprint != fingerprint {
                    return Err(validation(
                        "704",
                        "request already processed or in progress with a different body",
                    ));
                }
                return Ok(json_response(replay.status, replay.body, key));
            }
            let applied = apply(&mut state)?;
            if let Some(k) = key {
                let replay = Replay {
                    fingerprint,
                    status: applied.status,
                    body: applied.body.clone(),
                };
                let account = state.accounts.entry(account.clone()).or_default();
                account.replays.insert(k.to_owned(), replay);
            }
            let response = json_response(applied.status, applied.body, key);
            (response, applied.notify)
        };
        self.dispatch(notify);
        Ok(response)
    }
}

// ---------------------------------------------------------------------------------------
// Checkout: sessions.

async fn create_session(
    State(sim): State<Sim>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Rejection> {
    let api_key = authenticate(&headers)?;
    let body = parse_body(&body)?;
    let merchant = required(&body, "merchantAccount")?.to_owned();
    let account = (api_key, merchant);
    let key = idempotency_key(&headers);
    let fingerprint = json!({"path": "/v71/sessions", "body": body});
    sim.idempotent(&account, key.as_deref(), fingerprint, |state| {
        new_session(&sim, state, &account, &body, key.as_deref())
    })
}

fn new_session(
    sim: &Sim,
    state: &mut SimState,
    account: &AccountKey,
    body: &Value,
    key: Option<&str>,
) -> Result<Applied, Rejection> {
    let (amount, currency) = amount_field(body)?;
    let reference = required(body, "reference")?.to_owned();
    let return_url = required(body, "returnUrl")?.to_owned();
    let shopper_reference = str_field(body, "shopperReference").map(str::to_owned);
    let store_method = str_field(body, "storePaymentMethodMode") == Some("enabled")
        || body.get("storePaymentMethod").and_then(Value::as_bool) == Some(true);
    let recurring = str_field(body, "recurringProcessingModel").is_some();
    if (store_method || recurring) && shopper_reference.is_none() {
        return Err(validation(
            "000",
            "Recurring payments require a shopperReference",
        ));
    }
    let now = now_ms();
    let expires_at_ms = match body.get("expiresAt") {
        None | Some(Value::Null) => now + SESSION_LIFETIME_MS,
        Some(value) => {
            let invalid = || validation("000", "Invalid 'expiresAt': expected an ISO 8601 date");
            let at = value
                .as_str()
                .and_then(parse_rfc3339_ms)
                .ok_or_else(invalid)?;
            if at > now + MAX_SESSION_LIFETIME_MS {
                return Err(validation(
                    "000",
                    "'expiresAt' cannot be more than 24 hours after the session is created",
                ));
            }
            at
        }
    };
    let manual_capture = body
        .get("additionalData")
        .and_then(|data| data.get("manualCapture"))
        .and_then(Value::as_str)
        == Some("true");
    let id = format!("CS{}", random_hex(16));
    let mode = str_field(body, "mode").unwrap_or("embedded");
    // Adyen echoes the request (with `expiresAt` as it was sent) and adds what it made.
    let mut answer = body.clone();
    answer["id"] = json!(id);
    answer["mode"] = json!(mode);
    if body.get("expiresAt").is_none_or(Value::is_null) {
        answer["expiresAt"] = json!(rfc3339(expires_at_ms / 1000));
    }
    answer["sessionData"] = json!(session_data(&id, &account.1));
    if mode == "hosted" {
        answer["url"] = json!(format!("{}/_sim/checkout/{id}", sim.base_url));
    }
    let session = Session {
        id: id.clone(),
        merchant_account: account.1.clone(),
        amount,
        currency,
        reference,
        return_url,
        shopper_reference,
        store_method,
        manual_capture,
        status: "active",
        expires_at_ms,
        psp_references: Vec::new(),
        idempotency_keys: key.map(str::to_owned).into_iter().collect(),
    };
    let owner = state.accounts.entry(account.clone()).or_default();
    owner.sessions.push(session);
    state.session_owner.insert(id, account.clone());
    Ok(Applied {
        status: StatusCode::CREATED,
        body: answer,
        notify: Vec::new(),
    })
}

/// Opaque to the shopper's browser, as Adyen's is.
fn session_data(id: &str, merchant: &str) -> String {
    let inner = json!({"id": id, "merchantAccount": merchant, "nonce": random_hex(16)});
    format!("Ab02b4c0!{}", BASE64.encode(inner.to_string()))
}

fn session_result(id: &str, status: &str) -> String {
    let inner = json!({"id": id, "status": status});
    format!("X3XtfGC9!{}", BASE64.encode(inner.to_string()))
}

impl Session {
    /// The status, turning `active` into `expired` once the session has run out (`now_ms`
    /// at or after `expiresAt`).
    fn current_status(&mut self, now_ms: u64) -> &'static str {
        if self.status == "active" && now_ms >= self.expires_at_ms {
            self.status = "expired";
        }
        self.status
    }
}

async fn get_session(
    State(sim): State<Sim>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, Rejection> {
    let api_key = authenticate(&headers)?;
    if query.get("sessionResult").is_none_or(String::is_empty) {
        return Err(missing("sessionResult"));
    }
    let mut state = sim.lock();
    let state = &mut *state;
    let owner = state.session_owner.get(&id).filter(|o| o.0 == api_key);
    let session = owner
        .and_then(|o| state.accounts.get_mut(o))
        .and_then(|a| a.sessions.iter_mut().find(|s| s.id == id));
    let session = session
        .ok_or_else(|| adyen_error(StatusCode::NOT_FOUND, "000", "Not Found", "validation"))?;
    let status = session.current_status(now_ms());
    Ok(Json(json!({"id": id, "status": status})).into_response())
}

// ---------------------------------------------------------------------------------------
// The shopper's side: the hosted page and the 3-D Secure challenge.

#[derive(Debug, Deserialize)]
struct OutcomeForm {
    outcome: String,
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><h1>{title}</h1>{body}</body></html>\n"
    ))
}

fn page_error(status: StatusCode, message: &str) -> Rejection {
    (status, page("Adyen simulator", &html_escape(message))).into()
}

/// The session's amount, currency and reference, while it can still be paid.
fn payable_session(sim: &Sim, id: &str) -> Result<(i64, String, String), Rejection> {
    let mut state = sim.lock();
    let state = &mut *state;
    let session = state
        .session_owner
        .get(id)
        .and_then(|o| state.accounts.get_mut(o))
        .and_then(|a| a.sessions.iter_mut().find(|s| s.id == id))
        .ok_or_else(|| page_error(StatusCode::NOT_FOUND, "No such session."))?;
    match session.current_status(now_ms()) {
        "active" => Ok((
            session.amount,
            session.currency.clone(),
            session.reference.clone(),
        )),
        status => Err(page_error(
            StatusCode::CONFLICT,
            &format!("This session is {status}."),
        )),
    }
}

/// The hosted page of session `id`; after a refused attempt it says so above the form.
fn checkout_html(
    id: &str,
    (amount, currency, reference): (i64, String, String),
    notice: Option<&str>,
) -> Html<String> {
    let notice = notice.map_or_else(String::new, |reason| {
        format!(
            "<p role=\"alert\">Your payment was refused ({}). You can try another card.</p>",
            html_escape(reason)
        )
    });
    let body = format!(
        "{notice}<p>Amount: {amount} {currency} (minor units)</p><p>Reference: {}</p>\
         <form method=\"post\" action=\"/_sim/checkout/{}\">\
         <button name=\"outcome\" value=\"authorise\">Pay</button> \
         <button name=\"outcome\" value=\"refuse\">Refuse</button> \
         <button name=\"outcome\" value=\"challenge\">3-D Secure</button>\
         </form>",
        html_escape(&reference),
        html_escape(id)
    );
    page("Adyen simulator checkout", &body)
}

async fn checkout_page(
    State(sim): State<Sim>,
    Path(id): Path<String>,
) -> Result<Response, Rejection> {
    let session = payable_session(&sim, &id)?;
    Ok(checkout_html(&id, session, None).into_response())
}

async fn checkout_submit(
    State(sim): State<Sim>,
    Path(id): Path<String>,
    Form(form): Form<OutcomeForm>,
) -> Result<Response, Rejection> {
    payable_session(&sim, &id)?;
    match form.outcome.as_str() {
        "authorise" => finish(&sim, &id, None),
        "refuse" => finish(&sim, &id, Some("Refused")),
        "challenge" => Ok(Redirect::to(&format!("/_sim/3ds/{id}")).into_response()),
        _ => Err(page_error(StatusCode::BAD_REQUEST, "Unknown outcome.")),
    }
}

async fn challenge_page(
    State(sim): State<Sim>,
    Path(id): Path<String>,
) -> Result<Response, Rejection> {
    payable_session(&sim, &id)?;
    let body = "<p>Your bank asks you to confirm this payment.</p>\
         <form method=\"post\">\
         <button name=\"outcome\" value=\"complete\">Complete</button> \
         <button name=\"outcome\" value=\"fail\">Fail</button>\
         </form>";
    Ok(page("3-D Secure", body).into_response())
}

async fn challenge_submit(
    State(sim): State<Sim>,
    Path(id): Path<String>,
    Form(form): Form<OutcomeForm>,
) -> Result<Response, Rejection> {
    payable_session(&sim, &id)?;
    match form.outcome.as_str() {
        "complete" => finish(&sim, &id, None),
        "fail" => finish(&sim, &id, Some("3D Not Authenticated")),
        _ => Err(page_error(StatusCode::BAD_REQUEST, "Unknown outcome.")),
    }
}

/// One attempt at paying the session: authorised (`refusal: None`) or refused, as a payment
/// of its own with its `AUTHORISATION` webhook. Paid, the shopper goes back to the
/// `returnUrl`; refused, the page says so and the session stays payable for another card.
fn finish(sim: &Sim, id: &str, refusal: Option<&str>) -> Result<Response, Rejection> {
    let concluded = conclude_session(&mut sim.lock(), id, refusal);
    let (location, n) =
        concluded.ok_or_else(|| page_error(StatusCode::NOT_FOUND, "No such session."))?;
    sim.dispatch(vec![n]);
    match (location, refusal) {
        (Some(location), _) => Ok(Redirect::to(&location).into_response()),
        (None, reason) => {
            let session = payable_session(sim, id)?;
            Ok(checkout_html(id, session, reason).into_response())
        }
    }
}

/// The payment of one attempt at session `id`: the return location once paid, and the
/// notification.
fn conclude_session(
    state: &mut SimState,
    id: &str,
    refusal: Option<&str>,
) -> Option<(Option<String>, usize)> {
    let owner = state.session_owner.get(id)?.clone();
    let account = state.accounts.get_mut(&owner)?;
    let session = account.sessions.iter_mut().find(|s| s.id == id)?;
    let psp = new_psp_reference();
    let authorised = refusal.is_none();
    if authorised {
        session.status = "completed";
    }
    session.psp_references.push(psp.clone());
    // Without manual capture the account's default (immediate) applies: captured at once.
    let auto_captured = authorised && !session.manual_capture;
    let payment = Payment {
        merchant_account: session.merchant_account.clone(),
        amount: session.amount,
        currency: session.currency.clone(),
        reference: session.reference.clone(),
        authorised,
        auto_captured,
        cancelled: false,
        captured: if auto_captured { session.amount } else { 0 },
        refunded: 0,
        idempotency_keys: Vec::new(),
    };
    let additional = authorisation_data(session, &psp, refusal.is_none());
    let reason = refusal.map_or_else(|| "033899:1111:03/2030".to_owned(), str::to_owned);
    let item = notification_item(Event {
        code: "AUTHORISATION",
        psp_reference: &psp,
        original_reference: None,
        merchant_reference: &payment.reference,
        payment: &payment,
        amount: payment.amount,
        success: authorised,
        reason: Some(reason.as_str()),
        additional,
    });
    let location = authorised
        .then(|| return_location(&session.return_url, id, &session_result(id, "completed")));
    account.payments.insert(psp.clone(), payment);
    let n = state.push_notification(&owner, &psp, item);
    Some((location, n))
}

/// `additionalData` of an `AUTHORISATION`: the stored method when the session asked to
/// store it, under both the older `recurring.*` and the newer `tokenization.*` keys.
fn authorisation_data(session: &Session, psp: &str, authorised: bool) -> Value {
    let mut data = json!({"cardSummary": "1111", "expiryDate": "03/2030"});
    if authorised && session.store_method {
        let shopper = session.shopper_reference.clone().unwrap_or_default();
        let method = format!("M{}", &psp[1..]);
        data["recurring.recurringDetailReference"] = json!(method);
        data["recurring.shopperReference"] = json!(shopper);
        data["tokenization.storedPaymentMethodId"] = json!(method);
        data["tokenization.shopperReference"] = json!(shopper);
        data["tokenization.store.operationType"] = json!("created");
    }
    data
}

fn return_location(return_url: &str, session_id: &str, result: &str) -> String {
    let query = serde_urlencoded::to_string([("sessionId", session_id), ("sessionResult", result)])
        .unwrap_or_default();
    let separator = if return_url.contains('?') { '&' } else { '?' };
    format!("{return_url}{separator}{query}")
}

// ---------------------------------------------------------------------------------------
// Checkout: modifications.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Capture,
    Cancel,
    Refund,
}

impl Operation {
    fn parse(path: &str) -> Option<Self> {
        match path {
            "captures" => Some(Self::Capture),
            "cancels" => Some(Self::Cancel),
            "refunds" => Some(Self::Refund),
            _ => None,
        }
    }

    fn event_code(self) -> &'static str {
        match self {
            Self::Capture => "CAPTURE",
            Self::Cancel => "CANCELLATION",
            Self::Refund => "REFUND",
        }
    }

    /// Applies the modification to `payment` when the accounting rules allow it; otherwise
    /// the reason it fails (sent in the webhook, as Adyen does).
    fn apply(self, payment: &mut Payment, amount: i64) -> Result<(), &'static str> {
        if !payment.authorised {
            return Err("Original payment was refused");
        }
        match self {
            Self::Capture if payment.cancelled => Err("Payment has been cancelled"),
            // Captured at authorisation already: asking again charges nothing more.
            Self::Capture if payment.auto_captured => Ok(()),
            Self::Capture if payment.captured + amount > payment.amount => {
                Err("Insufficient balance on payment")
            }
            Self::Capture => {
                payment.captured += amount;
                Ok(())
            }
            Self::Cancel if payment.cancelled => Err("Payment has already been cancelled"),
            Self::Cancel if payment.captured > 0 => Err("Payment has already been captured"),
            Self::Cancel => {
                payment.cancelled = true;
                Ok(())
            }
            Self::Refund if payment.refunded + amount > payment.captured => {
                Err("Insufficient balance on payment")
            }
            Self::Refund => {
                payment.refunded += amount;
                Ok(())
            }
        }
    }
}

async fn modification(
    State(sim): State<Sim>,
    Path((psp, operation)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Rejection> {
    let api_key = authenticate(&headers)?;
    let op = Operation::parse(&operation)
        .ok_or_else(|| adyen_error(StatusCode::NOT_FOUND, "000", "Not Found", "validation"))?;
    let body = parse_body(&body)?;
    let merchant = required(&body, "merchantAccount")?.to_owned();
    let account = (api_key, merchant);
    let key = idempotency_key(&headers);
    let path = format!("/v71/payments/{psp}/{operation}");
    let fingerprint = json!({"path": path, "body": body});
    sim.idempotent(&account, key.as_deref(), fingerprint, |state| {
        modify(state, &account, &psp, op, &body, key.as_deref())
    })
}

fn modify(
    state: &mut SimState,
    account: &AccountKey,
    psp: &str,
    op: Operation,
    body: &Value,
    key: Option<&str>,
) -> Result<Applied, Rejection> {
    let unknown = || validation("167", "Original pspReference required for this operation");
    let payment = state
        .accounts
        .get_mut(account)
        .and_then(|a| a.payments.get_mut(psp))
        .ok_or_else(unknown)?;
    let amount = match op {
        Operation::Cancel => payment.amount,
        _ => {
            let (value, currency) = amount_field(body)?;
            if currency != payment.currency {
                return Err(validation("138", "Unsupported currency specified"));
            }
            value
        }
    };
    let outcome = op.apply(payment, amount);
    payment.idempotency_keys.extend(key.map(str::to_owned));
    let modification_psp = new_psp_reference();
    let mut answer = json!({
        "merchantAccount": account.1,
        "paymentPspReference": psp,
        "pspReference": modification_psp,
        "status": "received",
    });
    if let Some(reference) = body.get("reference") {
        answer["reference"] = reference.clone();
    }
    if op != Operation::Cancel {
        answer["amount"] = json!({"value": amount, "currency": payment.currency});
    }
    // Adyen echoes the modification's own `reference` as the webhook's merchantReference.
    let merchant_reference = str_field(body, "reference").unwrap_or(&payment.reference);
    let item = notification_item(Event {
        code: op.event_code(),
        psp_reference: &modification_psp,
        original_reference: Some(psp),
        merchant_reference,
        payment,
        amount,
        success: outcome.is_ok(),
        reason: outcome.err(),
        additional: json!({}),
    });
    let n = state.push_notification(account, psp, item);
    Ok(Applied {
        status: StatusCode::CREATED,
        body: answer,
        notify: vec![n],
    })
}

// ---------------------------------------------------------------------------------------
// Management API: webhook endpoints.

fn webhook_json(base_url: &str, merchant: &str, endpoint: &Endpoint) -> Value {
    let own = format!(
        "{base_url}/v3/merchants/{merchant}/webhooks/{}",
        endpoint.id
    );
    json!({
        "id": endpoint.id,
        "type": "standard",
        "url": endpoint.url,
        "active": endpoint.active,
        "communicationFormat": "json",
        "description": endpoint.description,
        "username": endpoint.username,
        "hasPassword": endpoint.password.is_some(),
        "hasError": false,
        "accountReference": merchant,
        "_links": {
            "self": {"href": own},
            "generateHmac": {"href": format!("{own}/generateHmac")},
            "merchant": {"href": format!("{base_url}/v3/merchants/{merchant}")},
            "testWebhook": {"href": format!("{own}/test")},
        },
    })
}

/// A standard JSON webhook endpoint from the request, or why not.
fn endpoint_from(body: &Value) -> Result<Endpoint, Rejection> {
    let unprocessable = |detail: &str| problem(StatusCode::UNPROCESSABLE_ENTITY, detail);
    let url = str_field(body, "url")
        .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
        .ok_or_else(|| unprocessable("'url' must be an http(s) URL"))?;
    if str_field(body, "type") != Some("standard") {
        return Err(unprocessable("'type' must be 'standard'"));
    }
    if str_field(body, "communicationFormat") != Some("json") {
        return Err(unprocessable(
            "'communicationFormat' must be 'json' in the simulator",
        ));
    }
    let active = body.get("active").and_then(Value::as_bool);
    let active = active.ok_or_else(|| unprocessable("'active' is required"))?;
    Ok(Endpoint {
        id: format!("S2-{}", random_hex(12)),
        url: url.to_owned(),
        active,
        username: str_field(body, "username").map(str::to_owned),
        password: str_field(body, "password").map(str::to_owned),
        description: str_field(body, "description").map(str::to_owned),
        hmac_key: None,
    })
}

async fn create_webhook(
    State(sim): State<Sim>,
    Path(merchant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Rejection> {
    let api_key = authenticate(&headers)?;
    let endpoint = endpoint_from(&parse_body(&body)?)?;
    let answer = webhook_json(&sim.base_url, &merchant, &endpoint);
    let mut state = sim.lock();
    let account = state.accounts.entry((api_key, merchant)).or_default();
    account.webhooks.push(endpoint);
    Ok(Json(answer).into_response())
}

async fn generate_hmac(
    State(sim): State<Sim>,
    Path((merchant, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Rejection> {
    let api_key = authenticate(&headers)?;
    let mut state = sim.lock();
    let endpoint = state
        .accounts
        .get_mut(&(api_key, merchant))
        .and_then(|a| a.webhooks.iter_mut().find(|e| e.id == id));
    let endpoint = endpoint.ok_or_else(|| problem(StatusCode::NOT_FOUND, "Webhook not found"))?;
    let key = random_hex(64);
    endpoint.hmac_key = Some(key.clone());
    Ok(Json(json!({"hmacKey": key})).into_response())
}

// ---------------------------------------------------------------------------------------
// Simulator-only controls.

async fn set_faults(State(sim): State<Sim>, Json(faults): Json<Faults>) -> Json<Faults> {
    sim.lock().faults = faults;
    Json(faults)
}

async fn get_faults(State(sim): State<Sim>) -> Json<Faults> {
    Json(sim.lock().faults)
}

fn ledger_entry(
    account: &AccountKey,
    session: &Session,
    payments: &HashMap<String, Payment>,
) -> Value {
    // The latest attempt is the session's payment; the others were refused.
    let psp_reference = session.psp_references.last();
    let payment = psp_reference.and_then(|p| payments.get(p));
    let mut keys = session.idempotency_keys.clone();
    keys.extend(
        session
            .psp_references
            .iter()
            .filter_map(|p| payments.get(p))
            .flat_map(|p| p.idempotency_keys.iter().cloned()),
    );
    json!({
        "account": account_hash(account),
        "merchantAccount": session.merchant_account,
        "sessionId": session.id,
        "reference": session.reference,
        "amount": session.amount,
        "currency": session.currency,
        "sessionStatus": session.status,
        "expiresAt": rfc3339(session.expires_at_ms / 1000),
        "manualCapture": session.manual_capture,
        "pspReference": psp_reference,
        "pspReferences": session.psp_references,
        "status": payment.map_or(session.status, Payment::status),
        "captured": payment.map_or(0, |p| p.captured),
        "refunded": payment.map_or(0, |p| p.refunded),
        "idempotencyKeys": keys,
    })
}

async fn ledger(State(sim): State<Sim>) -> Json<Value> {
    let state = sim.lock();
    let entries: Vec<Value> = state
        .accounts
        .iter()
        .flat_map(|(key, account)| {
            account
                .sessions
                .iter()
                .map(move |s| ledger_entry(key, s, &account.payments))
        })
        .collect();
    Json(json!({"entries": entries}))
}

fn event_json(n: usize, record: &NotificationRecord) -> Value {
    let deliveries: Vec<Value> = record
        .deliveries
        .iter()
        .map(|d| {
            json!({
                "endpointId": d.endpoint_id,
                "url": d.url,
                "cause": d.cause,
                "delivered": d.delivered,
                "attempts": d.attempts,
            })
        })
        .collect();
    json!({
        "n": n,
        "account": account_hash(&record.account),
        "merchantAccount": record.account.1,
        "eventCode": record.item["eventCode"],
        "pspReference": record.item["pspReference"],
        "originalReference": record.item.get("originalReference"),
        "merchantReference": record.item["merchantReference"],
        "success": record.item["success"],
        "notification": record.item,
        "deliveries": deliveries,
    })
}

async fn events(State(sim): State<Sim>) -> Json<Value> {
    let state = sim.lock();
    let notifications: Vec<Value> = state
        .notifications
        .iter()
        .enumerate()
        .map(|(i, record)| event_json(i + 1, record))
        .collect();
    Json(json!({"notifications": notifications}))
}

async fn resend(State(sim): State<Sim>, Path(n): Path<usize>) -> Response {
    let started = {
        let mut state = sim.lock();
        if n == 0 || n > state.notifications.len() {
            return (
                StatusCode::NOT_FOUND,
                Json(json!({"error": "no such notification"})),
            )
                .into_response();
        }
        state.start_deliveries(n, "resend")
    };
    let count = started.len();
    for (n, d) in started {
        tokio::spawn(run_delivery(sim.clone(), n, d, 0));
    }
    (
        StatusCode::ACCEPTED,
        Json(json!({"n": n, "deliveries": count})),
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------
// Routes and serving.

/// The simulator's routes.
fn router(sim: Sim) -> Router {
    let api = Router::new()
        .route("/v71/sessions", post(create_session))
        .route("/v71/sessions/{id}", get(get_session))
        .route("/v71/payments/{psp}/{operation}", post(modification))
        .route("/v3/merchants/{merchant}/webhooks", post(create_webhook))
        .route(
            "/v3/merchants/{merchant}/webhooks/{id}/generateHmac",
            post(generate_hmac),
        )
        .route_layer(middleware::from_fn_with_state(sim.clone(), api_faults));
    Router::new()
        .merge(api)
        .route(
            "/_sim/checkout/{id}",
            get(checkout_page).post(checkout_submit),
        )
        .route("/_sim/3ds/{id}", get(challenge_page).post(challenge_submit))
        .route("/_sim/faults", get(get_faults).post(set_faults))
        .route("/_sim/ledger", get(ledger))
        .route("/_sim/events", get(events))
        .route("/_sim/webhooks/resend/{n}", post(resend))
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
    let http = reqwest::Client::builder()
        // Adyen waits 10 s for an endpoint's answer.
        .timeout(Duration::from_secs(10))
        // Webhook endpoints are local in tests and the local run; never go through a proxy.
        .no_proxy()
        .build()
        .map_err(std::io::Error::other)?;
    let sim = Sim {
        state: Arc::default(),
        base_url: Arc::from(format!("http://{address}")),
        http,
    };
    on_bound(address);
    tracing::info!(%address, "Adyen simulator listening.");
    axum::serve(listener, router(sim))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Shared by the simulator's tests and the client's: a simulator, a webhook receiver and the
/// calls a test makes as the shopper or the operator.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::atomic::{AtomicU32, Ordering};

    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;
    use serde_json::{Value, json};
    use tokio::sync::mpsc;

    use super::{Arc, Duration, serve};

    /// Adyen's keys start with `AQE`.
    pub(crate) const API_KEY: &str = "AQEyhmfxTestKeyForTheSimulator";

    /// Starts a simulator on a free port; returns its base URL.
    pub(crate) async fn start() -> String {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let listen = "127.0.0.1:0".parse().expect("address");
        tokio::spawn(serve(listen, std::future::pending(), move |address| {
            let _ = tx.send(address);
        }));
        format!("http://{}", rx.await.expect("simulator bound"))
    }

    /// A client that shows redirects instead of following them.
    pub(crate) fn http() -> reqwest::Client {
        reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
    }

    /// One webhook POST as the receiver saw it.
    #[derive(Debug)]
    pub(crate) struct Received {
        pub(crate) authorization: Option<String>,
        pub(crate) body: Vec<u8>,
    }

    /// A webhook endpoint that answers 500 to its first `fail_first` requests and
    /// `[accepted]` to the rest.
    #[derive(Debug)]
    pub(crate) struct Receiver {
        pub(crate) url: String,
        received: mpsc::UnboundedReceiver<Received>,
    }

    type ReceiverState = (mpsc::UnboundedSender<Received>, Arc<AtomicU32>);

    async fn receive(
        State((tx, failures)): State<ReceiverState>,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> (StatusCode, &'static str) {
        let fail = failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            return (StatusCode::INTERNAL_SERVER_ERROR, "try again");
        }
        let authorization = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let _ = tx.send(Received {
            authorization,
            body: body.to_vec(),
        });
        (StatusCode::OK, "[accepted]")
    }

    /// Starts a receiver on a free port.
    pub(crate) async fn receiver(fail_first: u32) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let (tx, rx) = mpsc::unbounded_channel();
        let state: ReceiverState = (tx, Arc::new(AtomicU32::new(fail_first)));
        let app = axum::Router::new()
            .route("/hook", post(receive))
            .with_state(state);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver {
            url: format!("http://{address}/hook"),
            received: rx,
        }
    }

    impl Receiver {
        /// The next accepted webhook, within 10 s.
        pub(crate) async fn next(&mut self) -> Received {
            tokio::time::timeout(Duration::from_secs(10), self.received.recv())
                .await
                .expect("a webhook within 10 s")
                .expect("receiver running")
        }

        /// The next webhook's only item, as JSON.
        pub(crate) async fn next_item(&mut self) -> Value {
            let received = self.next().await;
            let body: Value = serde_json::from_slice(&received.body).expect("JSON");
            body["notificationItems"][0]["NotificationRequestItem"].clone()
        }

        /// Whether a webhook arrives within `wait`.
        pub(crate) async fn quiet_for(&mut self, wait: Duration) -> bool {
            tokio::time::timeout(wait, self.received.recv())
                .await
                .is_err()
        }
    }

    /// POSTs `body` with the test API key (and `idempotency_key` when given).
    pub(crate) async fn post_json(
        url: &str,
        body: &Value,
        idempotency_key: Option<&str>,
    ) -> reqwest::Response {
        let mut request = http().post(url).header("X-API-Key", API_KEY).json(body);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await.expect("simulator reachable")
    }

    /// Sets up a standard webhook to `url` for `merchant` and returns its HMAC key.
    pub(crate) async fn register(base: &str, merchant: &str, url: &str) -> String {
        let hooks = format!("{base}/v3/merchants/{merchant}/webhooks");
        let body = json!({"url": url, "type": "standard", "active": true,
                          "communicationFormat": "json"});
        let webhook: Value = post_json(&hooks, &body, None)
            .await
            .json()
            .await
            .expect("JSON");
        let id = webhook["id"].as_str().expect("webhook id");
        let generate = format!("{hooks}/{id}/generateHmac");
        let key: Value = post_json(&generate, &json!({}), None)
            .await
            .json()
            .await
            .expect("JSON");
        key["hmacKey"].as_str().expect("hmacKey").to_owned()
    }

    /// Submits the hosted page (or the 3-D Secure page) at `url` as the shopper.
    pub(crate) async fn submit(url: &str, outcome: &str) -> reqwest::Response {
        http()
            .post(url)
            .form(&[("outcome", outcome)])
            .send()
            .await
            .expect("simulator reachable")
    }

    /// Replaces the simulator's faults.
    pub(crate) async fn faults(base: &str, faults: Value) {
        let response = http()
            .post(format!("{base}/_sim/faults"))
            .json(&faults)
            .send()
            .await
            .expect("simulator reachable");
        assert!(response.status().is_success());
    }

    /// `GET /_sim/<what>` as JSON.
    pub(crate) async fn control(base: &str, what: &str) -> Value {
        http()
            .get(format!("{base}/_sim/{what}"))
            .send()
            .await
            .expect("simulator reachable")
            .json()
            .await
            .expect("JSON")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::testing::{self, API_KEY};
    use super::*;

    const MERCHANT: &str = "TestMerchantECOM";

    fn session_body(reference: &str) -> Value {
        json!({
            "merchantAccount": MERCHANT,
            "amount": {"value": 12_900, "currency": "DKK"},
            "reference": reference,
            "returnUrl": "https://shop.example/return?step=paid",
            "shopperReference": "customer-1",
            "mode": "hosted",
            "additionalData": {"manualCapture": "true"},
        })
    }

    fn status_of(base: &str, id: &str) -> impl Future<Output = Value> {
        let url = format!("{base}/v71/sessions/{id}?sessionResult=x");
        async move {
            let answer: Value = testing::http()
                .get(url)
                .header("X-API-Key", API_KEY)
                .send()
                .await
                .expect("reachable")
                .json()
                .await
                .expect("JSON");
            answer["status"].clone()
        }
    }

    /// A simulator with a webhook endpoint for [`MERCHANT`].
    async fn world(fail_first: u32) -> (String, testing::Receiver) {
        let base = testing::start().await;
        let hooks = testing::receiver(fail_first).await;
        testing::register(&base, MERCHANT, &hooks.url).await;
        (base, hooks)
    }

    async fn new_session(base: &str, reference: &str) -> Value {
        let url = format!("{base}/v71/sessions");
        let response = testing::post_json(&url, &session_body(reference), None).await;
        assert_eq!(response.status(), 201);
        response.json().await.expect("JSON")
    }

    /// Pays a new session on the hosted page; returns the payment's pspReference.
    async fn authorised_payment(base: &str, hooks: &mut testing::Receiver) -> String {
        let session = new_session(base, "order-1").await;
        testing::submit(session["url"].as_str().expect("url"), "authorise").await;
        let item = hooks.next_item().await;
        assert_eq!(item["eventCode"], "AUTHORISATION");
        item["pspReference"].as_str().expect("psp").to_owned()
    }

    async fn modify(base: &str, psp: &str, operation: &str, value: i64) -> reqwest::Response {
        let url = format!("{base}/v71/payments/{psp}/{operation}");
        let body = json!({"merchantAccount": MERCHANT, "reference": operation,
                          "amount": {"value": value, "currency": "DKK"}});
        testing::post_json(&url, &body, None).await
    }

    #[test]
    fn signs_adyens_documented_example() {
        // The fixture of Adyen's own libraries (adyen-ruby-api-library hmac_validator_spec).
        let item = json!({
            "amount": {"value": 1130, "currency": "EUR"},
            "pspReference": "7914073381342284",
            "eventCode": "AUTHORISATION",
            "merchantAccountCode": "TestMerchant",
            "merchantReference": "TestPayment-1407325143704",
            "success": "true",
        });
        let key = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056";
        let signature = sign_item(&item, key);
        assert_eq!(
            signature.as_deref(),
            Some("coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0=")
        );
    }

    #[test]
    fn signs_the_php_librarys_example() {
        // Adyen's PHP library, HmacSignatureTest::testNotificationRequestItemHmac.
        let item = json!({
            "pspReference": "7914073381342284",
            "merchantAccountCode": "TestMerchant",
            "merchantReference": "TestPayment-1407325143704",
            "amount": {"value": 1130, "currency": "EUR"},
            "eventCode": "AUTHORISATION",
            "success": "true",
        });
        let key = "DFB1EB5485895CFA84146406857104ABB4CBCABDC8AAF103A624C8F6A3EAAB00";
        assert_eq!(
            sign_item(&item, key).as_deref(),
            Some("Ny9gS2veKo5E4w8/OL6xz1/wvT/hYkAXy1xNc/QvO4I=")
        );
        // The client's check accepts what the simulator signs.
        let mut signed = item.clone();
        signed["additionalData"] = json!({"hmacSignature": sign_item(&item, key)});
        let parsed: crate::payments::adyen::NotificationItem =
            serde_json::from_value(signed).expect("an item");
        assert!(crate::payments::adyen::verify_hmac(&parsed, key));
    }

    #[test]
    fn signs_a_colon_in_a_field_raw() {
        let item = json!({
            "pspReference": "MOD0000000000002", "originalReference": "PSP0000000000001",
            "merchantAccountCode": "TestMerchant", "merchantReference": "order:1",
            "amount": {"value": 100, "currency": "DKK"}, "eventCode": "CAPTURE",
            "success": "true",
        });
        let key = "00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF";
        let mut mac = Hmac::<Sha256>::new_from_slice(&hex::decode(key).expect("hex")).expect("key");
        mac.update(b"MOD0000000000002:PSP0000000000001:TestMerchant:order:1:100:DKK:CAPTURE:true");
        let expected = BASE64.encode(mac.finalize().into_bytes());
        assert_eq!(sign_item(&item, key), Some(expected));
    }

    #[test]
    fn parses_rfc3339_instants() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_ms("2000-02-29T12:34:56Z"),
            Some(951_827_696_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2000-02-29T13:34:56.25+01:00"),
            Some(951_827_696_250)
        );
        assert_eq!(
            parse_rfc3339_ms("2000-02-29T10:04:56-02:30"),
            Some(951_827_696_000)
        );
        for bad in [
            "2000-02-29",
            "2000-13-01T00:00:00Z",
            "2000-02-29T12:34:56",
            "soon",
            "",
        ] {
            assert_eq!(parse_rfc3339_ms(bad), None, "{bad}");
        }
        // The simulator's own writer reads back.
        assert_eq!(
            parse_rfc3339_ms(&rfc3339(1_735_689_599)),
            Some(1_735_689_599_000)
        );
    }

    #[test]
    fn formats_dates_as_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00+00:00");
        assert_eq!(rfc3339(951_827_696), "2000-02-29T12:34:56+00:00");
        assert_eq!(rfc3339(1_735_689_599), "2024-12-31T23:59:59+00:00");
    }

    #[tokio::test]
    async fn refuses_a_key_that_is_not_an_adyen_key() {
        let base = testing::start().await;
        let response = testing::http()
            .post(format!("{base}/v71/sessions"))
            .header("X-API-Key", "sk_test_123")
            .json(&session_body("order-1"))
            .send()
            .await
            .expect("reachable");
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["errorCode"], "000");
        assert_eq!(body["errorType"], "security");
        assert_eq!(body["message"], "HTTP Status Response - Unauthorized");
    }

    #[tokio::test]
    async fn validates_a_session_request() {
        let base = testing::start().await;
        let url = format!("{base}/v71/sessions");
        let mut body = session_body("order-1");
        body.as_object_mut().expect("object").remove("returnUrl");
        let response = testing::post_json(&url, &body, None).await;
        assert_eq!(response.status(), 422);
        let error: Value = response.json().await.expect("JSON");
        assert_eq!(error["errorType"], "validation");
        assert!(
            error["message"]
                .as_str()
                .expect("message")
                .contains("returnUrl")
        );
        let mut body = session_body("order-1");
        body["amount"]["currency"] = json!("kr");
        let response = testing::post_json(&url, &body, None).await;
        let error: Value = response.json().await.expect("JSON");
        assert_eq!(error["errorCode"], "138");
    }

    #[tokio::test]
    async fn replays_a_key_and_refuses_it_for_another_body() {
        let base = testing::start().await;
        let url = format!("{base}/v71/sessions");
        let first = testing::post_json(&url, &session_body("order-1"), Some("k1")).await;
        assert_eq!(first.headers()["idempotency-key"], "k1");
        let first: Value = first.json().await.expect("JSON");
        let again: Value = testing::post_json(&url, &session_body("order-1"), Some("k1"))
            .await
            .json()
            .await
            .expect("JSON");
        assert_eq!(first, again);
        let other = testing::post_json(&url, &session_body("order-2"), Some("k1")).await;
        assert_eq!(other.status(), 422);
        let error: Value = other.json().await.expect("JSON");
        assert_eq!(error["errorCode"], "704");
        let ledger = testing::control(&base, "ledger").await;
        assert_eq!(ledger["entries"].as_array().expect("entries").len(), 1);
        assert_eq!(ledger["entries"][0]["idempotencyKeys"], json!(["k1"]));
    }

    #[tokio::test]
    async fn reports_the_session_result() {
        let (base, mut hooks) = world(0).await;
        let session = new_session(&base, "order-1").await;
        let id = session["id"].as_str().expect("id");
        assert!(id.starts_with("CS"));
        let result_url = format!("{base}/v71/sessions/{id}?sessionResult=x");
        let status = |url: String| async move {
            let answer: Value = testing::http()
                .get(url)
                .header("X-API-Key", API_KEY)
                .send()
                .await
                .expect("reachable")
                .json()
                .await
                .expect("JSON");
            answer["status"].clone()
        };
        assert_eq!(status(result_url.clone()).await, "active");
        let page = testing::submit(session["url"].as_str().expect("url"), "authorise").await;
        assert_eq!(page.status(), 303);
        let location = page.headers()["location"].to_str().expect("location");
        assert!(location.starts_with("https://shop.example/return?step=paid&sessionId=CS"));
        assert!(location.contains("&sessionResult="));
        assert_eq!(status(result_url).await, "completed");
        let item = hooks.next_item().await;
        assert_eq!(item["success"], "true");
        assert_eq!(item["pspReference"].as_str().expect("psp").len(), 16);
    }

    #[tokio::test]
    async fn honours_expires_at() {
        let base = testing::start().await;
        let url = format!("{base}/v71/sessions");
        let soon = now_ms() + 300;
        let at = format!(
            "{}.{:03}Z",
            rfc3339(soon / 1000).trim_end_matches("+00:00"),
            soon % 1000
        );
        let mut body = session_body("order-1");
        body["expiresAt"] = json!(at);
        let session: Value = testing::post_json(&url, &body, None)
            .await
            .json()
            .await
            .expect("JSON");
        assert_eq!(session["expiresAt"], json!(at));
        let id = session["id"].as_str().expect("id");
        let page = session["url"].as_str().expect("url");
        assert_eq!(status_of(&base, id).await, "active");
        tokio::time::sleep(Duration::from_millis(450)).await;
        assert_eq!(status_of(&base, id).await, "expired");
        let shown = testing::http().get(page).send().await.expect("page");
        assert_eq!(shown.status(), 409);
        assert!(shown.text().await.expect("html").contains("expired"));
        let paid = testing::submit(page, "authorise").await;
        assert_eq!(paid.status(), 409);
        let ledger = testing::control(&base, "ledger").await;
        assert_eq!(ledger["entries"][0]["pspReferences"], json!([]));

        // At most 24 hours, and a date it is.
        body["expiresAt"] = json!(rfc3339(now_secs() + 25 * 3600));
        let response = testing::post_json(&url, &body, None).await;
        assert_eq!(response.status(), 422);
        body["expiresAt"] = json!("tomorrow");
        let response = testing::post_json(&url, &body, None).await;
        assert_eq!(response.status(), 422);
        // Without it, one hour.
        let session = new_session(&base, "order-2").await;
        let expires = parse_rfc3339_ms(session["expiresAt"].as_str().expect("expiresAt"));
        let hour = expires.expect("a date").saturating_sub(now_ms());
        assert!((3_590_000..=3_600_000).contains(&hour), "{hour}");
    }

    #[tokio::test]
    async fn a_refused_attempt_leaves_the_session_payable() {
        let (base, mut hooks) = world(0).await;
        let session = new_session(&base, "order-1").await;
        let id = session["id"].as_str().expect("id");
        let page = session["url"].as_str().expect("url");
        let refused = testing::submit(page, "refuse").await;
        assert_eq!(refused.status(), 200);
        let html = refused.text().await.expect("html");
        assert!(
            html.contains("refused") && html.contains("another card"),
            "{html}"
        );
        let first = hooks.next_item().await;
        assert_eq!(
            (&first["eventCode"], &first["success"]),
            (&json!("AUTHORISATION"), &json!("false"))
        );
        assert_eq!(status_of(&base, id).await, "active");
        // A failed 3-D Secure challenge is a refusal too; the shopper is still on the page.
        let challenge = testing::submit(page, "challenge").await;
        let challenge = format!(
            "{base}{}",
            challenge.headers()["location"].to_str().expect("location")
        );
        assert_eq!(testing::submit(&challenge, "fail").await.status(), 200);
        let second = hooks.next_item().await;
        assert_eq!(second["success"], "false");
        let paid = testing::submit(page, "authorise").await;
        assert_eq!(paid.status(), 303);
        let third = hooks.next_item().await;
        assert_eq!(third["success"], "true");
        assert_eq!(third["merchantReference"], "order-1");
        let psps =
            [&first, &second, &third].map(|i| i["pspReference"].as_str().expect("psp").to_owned());
        assert!(psps[0] != psps[1] && psps[1] != psps[2] && psps[0] != psps[2]);
        assert_eq!(status_of(&base, id).await, "completed");
        assert_eq!(testing::submit(page, "authorise").await.status(), 409);
        let ledger = testing::control(&base, "ledger").await;
        let entry = &ledger["entries"][0];
        assert_eq!(entry["pspReferences"], json!(psps));
        assert_eq!(entry["pspReference"], json!(psps[2]));
        assert_eq!(entry["status"], "Authorised");
    }

    #[tokio::test]
    async fn modification_webhooks_echo_the_request_reference() {
        let (base, mut hooks) = world(0).await;
        let psp = authorised_payment(&base, &mut hooks).await;
        let url = format!("{base}/v71/payments/{psp}/captures");
        let body = json!({"merchantAccount": MERCHANT, "reference": "order-1:capture-1",
                          "amount": {"value": 12_900, "currency": "DKK"}});
        let answer: Value = testing::post_json(&url, &body, None)
            .await
            .json()
            .await
            .expect("JSON");
        assert_eq!(answer["reference"], "order-1:capture-1");
        let item = hooks.next_item().await;
        assert_eq!(item["eventCode"], "CAPTURE");
        assert_eq!(item["merchantReference"], "order-1:capture-1");
        // Without a reference, the payment's own.
        let url = format!("{base}/v71/payments/{psp}/refunds");
        let body =
            json!({"merchantAccount": MERCHANT, "amount": {"value": 100, "currency": "DKK"}});
        testing::post_json(&url, &body, None).await;
        assert_eq!(hooks.next_item().await["merchantReference"], "order-1");
    }

    #[tokio::test]
    async fn without_manual_capture_a_payment_is_captured_when_authorised() {
        let (base, mut hooks) = world(0).await;
        let mut body = session_body("order-1");
        body.as_object_mut()
            .expect("object")
            .remove("additionalData");
        let url = format!("{base}/v71/sessions");
        let session: Value = testing::post_json(&url, &body, None)
            .await
            .json()
            .await
            .expect("JSON");
        testing::submit(session["url"].as_str().expect("url"), "authorise").await;
        let psp = hooks.next_item().await["pspReference"]
            .as_str()
            .expect("psp")
            .to_owned();
        let ledger = testing::control(&base, "ledger").await;
        assert_eq!(ledger["entries"][0]["manualCapture"], false);
        assert_eq!(ledger["entries"][0]["status"], "Captured");
        // Too late to void it.
        modify(&base, &psp, "cancels", 0).await;
        let item = hooks.next_item().await;
        assert_eq!(
            (&item["eventCode"], &item["success"]),
            (&json!("CANCELLATION"), &json!("false"))
        );
    }

    #[tokio::test]
    async fn stores_the_payment_method_when_asked() {
        let (base, mut hooks) = world(0).await;
        let mut body = session_body("order-1");
        body["storePaymentMethodMode"] = json!("enabled");
        body["recurringProcessingModel"] = json!("Subscription");
        let url = format!("{base}/v71/sessions");
        let session: Value = testing::post_json(&url, &body, None)
            .await
            .json()
            .await
            .expect("JSON");
        testing::submit(session["url"].as_str().expect("url"), "authorise").await;
        let item = hooks.next_item().await;
        let method = &item["additionalData"]["recurring.recurringDetailReference"];
        assert!(method.as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(
            item["additionalData"]["recurring.shopperReference"],
            "customer-1"
        );
    }

    #[tokio::test]
    async fn a_failed_3ds_challenge_refuses_the_payment() {
        let (base, mut hooks) = world(0).await;
        let session = new_session(&base, "order-1").await;
        let page = testing::submit(session["url"].as_str().expect("url"), "challenge").await;
        assert_eq!(page.status(), 303);
        let challenge = page.headers()["location"].to_str().expect("location");
        let challenge = format!("{base}{challenge}");
        let html = testing::http().get(&challenge).send().await.expect("page");
        assert!(html.text().await.expect("html").contains("Complete"));
        testing::submit(&challenge, "fail").await;
        let item = hooks.next_item().await;
        assert_eq!(item["success"], "false");
        assert_eq!(item["reason"], "3D Not Authenticated");
    }

    #[tokio::test]
    async fn impossible_modifications_fail_in_their_webhook() {
        let (base, mut hooks) = world(0).await;
        let psp = authorised_payment(&base, &mut hooks).await;
        let refund = modify(&base, &psp, "refunds", 100).await;
        assert_eq!(refund.status(), 201);
        let item = hooks.next_item().await;
        assert_eq!(
            (&item["eventCode"], &item["success"]),
            (&json!("REFUND"), &json!("false"))
        );
        assert_eq!(item["originalReference"], json!(psp));
        modify(&base, &psp, "cancels", 0).await;
        let item = hooks.next_item().await;
        assert_eq!(item["eventCode"], "CANCELLATION");
        assert_eq!(item["success"], "true");
        let capture = modify(&base, &psp, "captures", 100).await;
        let answer: Value = capture.json().await.expect("JSON");
        assert_eq!(answer["status"], "received");
        assert_eq!(answer["paymentPspReference"], json!(psp));
        let item = hooks.next_item().await;
        assert_eq!(item["eventCode"], "CAPTURE");
        assert_eq!(item["success"], "false");
        assert!(item["reason"].as_str().is_some_and(|r| !r.is_empty()));
        let unknown = modify(&base, "0000000000000000", "captures", 100).await;
        assert_eq!(unknown.status(), 422);
    }

    #[tokio::test]
    async fn retries_an_endpoint_that_answered_500() {
        let (base, mut hooks) = world(1).await;
        authorised_payment(&base, &mut hooks).await;
        // The attempt is recorded just after the receiver has answered.
        let mut attempts = Vec::new();
        for _ in 0..50 {
            let events = testing::control(&base, "events").await;
            let delivery = &events["notifications"][0]["deliveries"][0];
            if delivery["delivered"] == true {
                attempts = delivery["attempts"].as_array().expect("attempts").clone();
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let statuses: Vec<&Value> = attempts.iter().map(|a| &a["status"]).collect();
        assert_eq!(statuses, [&json!(500), &json!(200)]);
    }

    #[tokio::test]
    async fn duplicates_resends_and_reorders_on_request() {
        let (base, mut hooks) = world(0).await;
        testing::faults(&base, json!({"duplicate_webhooks": 1})).await;
        let psp = authorised_payment(&base, &mut hooks).await;
        let copy = hooks.next_item().await;
        assert_eq!(copy["pspReference"], json!(psp));
        let resend = testing::http()
            .post(format!("{base}/_sim/webhooks/resend/1"))
            .send()
            .await
            .expect("reachable");
        assert_eq!(resend.status(), 202);
        assert_eq!(hooks.next_item().await["pspReference"], json!(psp));
        assert!(hooks.quiet_for(Duration::from_millis(300)).await);

        testing::faults(&base, json!({"reorder_webhooks": true})).await;
        modify(&base, &psp, "captures", 12_900).await;
        modify(&base, &psp, "refunds", 100).await;
        assert_eq!(hooks.next_item().await["eventCode"], "REFUND");
        assert_eq!(hooks.next_item().await["eventCode"], "CAPTURE");
    }

    #[tokio::test]
    async fn sends_basic_auth_when_configured() {
        let base = testing::start().await;
        let mut hooks = testing::receiver(0).await;
        let url = format!("{base}/v3/merchants/{MERCHANT}/webhooks");
        let body = json!({"url": hooks.url, "type": "standard", "active": true,
                          "communicationFormat": "json", "username": "adyen",
                          "password": "s3cret"});
        let webhook: Value = testing::post_json(&url, &body, None)
            .await
            .json()
            .await
            .expect("JSON");
        assert_eq!(webhook["hasPassword"], true);
        assert!(
            webhook["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("S2-"))
        );
        let session = new_session(&base, "order-1").await;
        testing::submit(session["url"].as_str().expect("url"), "refuse").await;
        let received = hooks.next().await;
        let expected = format!("Basic {}", BASE64.encode("adyen:s3cret"));
        assert_eq!(received.authorization, Some(expected));
        let body: Value = serde_json::from_slice(&received.body).expect("JSON");
        let item = &body["notificationItems"][0]["NotificationRequestItem"];
        // No HMAC key was generated for this endpoint, so nothing is signed.
        assert!(item["additionalData"].get("hmacSignature").is_none());
        assert_eq!(body["live"], "false");
    }

    #[tokio::test]
    async fn generates_a_64_hex_hmac_key() {
        let base = testing::start().await;
        let key = testing::register(&base, MERCHANT, "http://127.0.0.1:9/hook").await;
        assert_eq!(key.len(), 64);
        assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
