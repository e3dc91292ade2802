//! A Stripe simulator for tests and the local run (`tcom stripe-sim`). It speaks the part of
//! Stripe's REST API the platform uses, from Stripe's documented shapes (not from the
//! client's types, so that the two can disagree and a test can notice):
//!
//! - `POST /v1/payment_intents`, `GET /v1/payment_intents/{id}` (`expand[]=latest_charge`
//!   gives the charge object instead of its id), `POST /v1/payment_intents/{id}/confirm|capture|
//!   cancel`, `POST /v1/refunds`, `POST /v1/webhook_endpoints`: form-encoded bodies with
//!   bracketed keys, JSON answers, errors as `{"error": {type, code, message, param}}`;
//! - a refund leaves its intent `succeeded`, as Stripe does: it shows on the charge
//!   (`amount_refunded`, `refunded`). So does the authorised amount a partial capture or a
//!   cancel releases, which Stripe books as refunded too;
//! - `Authorization: Bearer sk_test_…`: every key is an account of its own, created on first
//!   use, so tests and tenants do not see each other's intents;
//! - `Idempotency-Key` on POSTs: the first answer is replayed; the same key with other
//!   parameters is an `idempotency_error`;
//! - Stripe's test payment methods on confirm: `pm_card_visa`, `pm_card_chargeDeclined`,
//!   `pm_card_authenticationRequired` (a 3-D Secure page at `/_sim/3ds/{id}`);
//! - events (`payment_intent.*`, `charge.refunded`) delivered to the account's webhook
//!   endpoints, signed `Stripe-Signature: t=…,v1=…`, retried with backoff.
//!
//! Simulator-only endpoints under `/_sim/…` stand in for the shopper and for the test:
//! a hosted demo page (`/_sim/pay/{id}`), faults (`/_sim/faults`), what happened
//! (`/_sim/ledger`, `/_sim/events`) and re-delivery (`/_sim/webhooks/resend/{event}`).
//! State is kept in memory.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// The API version events are stamped with.
const API_VERSION: &str = "2024-06-20";

/// Waits between delivery attempts of one webhook: 8 attempts in all. Stripe retries for
/// days; a test wants to see the retries within seconds.
const RETRY_DELAYS: [Duration; 7] = [
    Duration::from_millis(200),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
    Duration::from_secs(16),
];

/// How long `reorder_webhooks` holds the events of one intent before delivering them
/// newest first.
const REORDER_HOLD: Duration = Duration::from_millis(300);

/// How long one delivery attempt may take.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

/// Stripe's limit on idempotency keys.
const MAX_IDEMPOTENCY_KEY: usize = 255;

const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Orders intents across accounts in the ledger.
static NEXT_SEQ: AtomicU64 = AtomicU64::new(1);

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn random_alnum(len: usize) -> String {
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for byte in uuid::Uuid::new_v4().into_bytes() {
            if out.len() == len {
                break;
            }
            out.push(char::from(
                ALPHANUMERIC[usize::from(byte) % ALPHANUMERIC.len()],
            ));
        }
    }
    out
}

fn random_id(prefix: &str, len: usize) -> String {
    format!("{prefix}{}", random_alnum(len))
}

/// The account's name in the ledger and events: a hash, so the key itself never leaves.
fn account_id(secret_key: &str) -> String {
    let digest = Sha256::digest(secret_key.as_bytes());
    format!("acct_{}", &hex::encode(digest)[..16])
}

/// The simulator's own webhook signature: hex HMAC-SHA256 of `"{t}.{body}"`, keyed with the
/// whole `whsec_…` string.
fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

// ---- errors ----

/// An error answer in Stripe's shape.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    kind: &'static str,
    code: Option<&'static str>,
    message: String,
    param: Option<String>,
    /// Fields beyond the common ones (a card error's `decline_code`, `payment_intent`).
    /// Boxed: errors travel in every `Result` of the simulator and are rarely this rich.
    extra: Option<Box<Map<String, Value>>>,
    /// Whether the answer is kept for the idempotency key. Stripe keeps the answers of
    /// requests that started executing, not of those that failed validation.
    saved: bool,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            code: None,
            message: message.into(),
            param: None,
            extra: None,
            saved: false,
        }
    }

    /// A parameter is missing or invalid.
    fn invalid(code: Option<&'static str>, param: &str, message: impl Into<String>) -> Self {
        Self {
            code,
            param: Some(param.to_owned()),
            ..Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
        }
    }

    fn missing(param: &str) -> Self {
        Self::invalid(
            Some("parameter_missing"),
            param,
            format!("Missing required param: {param}."),
        )
    }

    /// The object is not in a state that allows the operation.
    fn state(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code: Some(code),
            saved: true,
            ..Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
        }
    }

    fn no_such(object: &str, id: &str, param: &str) -> Self {
        Self {
            code: Some("resource_missing"),
            param: Some(param.to_owned()),
            ..Self::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                format!("No such {object}: '{id}'"),
            )
        }
    }

    fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_request_error", message)
    }

    fn body(&self) -> Value {
        let mut error = Map::new();
        error.insert("type".into(), json!(self.kind));
        error.insert("message".into(), json!(self.message));
        if let Some(code) = self.code {
            error.insert("code".into(), json!(code));
            error.insert(
                "doc_url".into(),
                json!(format!("https://stripe.com/docs/error-codes/{code}")),
            );
        }
        if let Some(param) = &self.param {
            error.insert("param".into(), json!(param));
        }
        if let Some(extra) = &self.extra {
            error.extend((**extra).clone());
        }
        json!({ "error": error })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

// ---- parameters ----

/// A form body: bracketed keys as they come (`metadata[order_id]`, `enabled_events[]`).
#[derive(Debug, Default)]
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(body: &[u8]) -> Result<Self, ApiError> {
        serde_urlencoded::from_bytes(body).map(Self).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "Invalid request body: expected form-encoded parameters.",
            )
        })
    }

    fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Self(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name).ok_or_else(|| ApiError::missing(name))
    }

    /// The values of a list parameter, `name[]=…` or `name[0]=…`.
    fn list(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| {
                k.strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix('['))
                    .and_then(|rest| rest.strip_suffix(']'))
                    .is_some_and(|index| index.bytes().all(|b| b.is_ascii_digit()))
            })
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn metadata(&self) -> BTreeMap<String, String> {
        self.0
            .iter()
            .filter_map(|(k, v)| {
                let key = k.strip_prefix("metadata[")?.strip_suffix(']')?;
                (!key.is_empty()).then(|| (key.to_owned(), v.clone()))
            })
            .collect()
    }

    /// Refuses parameters the endpoint does not know, as Stripe does; an entry ending in
    /// `[` admits every bracketed key under it.
    fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        let known = |key: &str| {
            allowed.iter().any(|a| {
                key == *a || (a.ends_with('[') && key.starts_with(a) && key.ends_with(']'))
            })
        };
        match self.0.iter().find(|(k, _)| !known(k)) {
            Some((key, _)) => Err(ApiError::invalid(
                Some("parameter_unknown"),
                key,
                format!("Received unknown parameter: {key}"),
            )),
            None => Ok(()),
        }
    }

    /// A positive integer (amounts).
    fn positive(&self, name: &str) -> Result<Option<i64>, ApiError> {
        let Some(raw) = self.get(name) else {
            return Ok(None);
        };
        let value: i64 = raw.parse().map_err(|_| {
            ApiError::invalid(
                Some("parameter_invalid_integer"),
                name,
                format!("Invalid integer: {raw}"),
            )
        })?;
        if value < 1 {
            return Err(ApiError::invalid(
                Some("parameter_invalid_integer"),
                name,
                "This value must be greater than or equal to 1.",
            ));
        }
        Ok(Some(value))
    }

    fn boolean(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(other) => Err(ApiError::invalid(
                None,
                name,
                format!("Invalid boolean: {other}"),
            )),
        }
    }

    fn one_of(&self, name: &str, values: &[&str]) -> Result<Option<&str>, ApiError> {
        match self.get(name) {
            Some(v) if !values.contains(&v) => Err(ApiError::invalid(
                None,
                name,
                format!("Invalid {name}: must be one of {}", values.join(", ")),
            )),
            other => Ok(other),
        }
    }

    fn currency(&self) -> Result<String, ApiError> {
        let raw = self.required("currency")?;
        if raw.len() == 3 && raw.bytes().all(|b| b.is_ascii_alphabetic()) {
            Ok(raw.to_ascii_lowercase())
        } else {
            Err(ApiError::invalid(
                None,
                "currency",
                format!("Invalid currency: {raw}."),
            ))
        }
    }

    /// The parameters in a stable order: what "the same parameters" means for idempotency.
    fn canonical(&self) -> String {
        let mut pairs = self.0.clone();
        pairs.sort();
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
}

// ---- model ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    RequiresPaymentMethod,
    RequiresConfirmation,
    RequiresAction,
    RequiresCapture,
    Succeeded,
    Canceled,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Self::RequiresPaymentMethod => "requires_payment_method",
            Self::RequiresConfirmation => "requires_confirmation",
            Self::RequiresAction => "requires_action",
            Self::RequiresCapture => "requires_capture",
            Self::Succeeded => "succeeded",
            Self::Canceled => "canceled",
        }
    }
}

/// Stripe's test payment methods the simulator knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TestCard {
    Visa,
    Declined,
    Authentication,
}

impl TestCard {
    fn parse(token: &str) -> Result<Self, ApiError> {
        match token {
            "pm_card_visa" => Ok(Self::Visa),
            "pm_card_chargeDeclined" => Ok(Self::Declined),
            "pm_card_authenticationRequired" => Ok(Self::Authentication),
            // A missing object named in a parameter makes the request invalid: 400, not 404.
            other => Err(ApiError {
                status: StatusCode::BAD_REQUEST,
                ..ApiError::no_such("PaymentMethod", other, "payment_method")
            }),
        }
    }
}

#[derive(Debug, Clone)]
struct Intent {
    seq: u64,
    id: String,
    client_secret: String,
    created: i64,
    amount: i64,
    amount_capturable: i64,
    amount_received: i64,
    /// Refunded of what was captured.
    amount_refunded: i64,
    /// Authorised, never captured, and let go (the rest of a partial capture, or a cancel
    /// after authorisation): Stripe shows it in the charge's `amount_refunded`.
    amount_released: i64,
    currency: String,
    status: Status,
    capture_method: String,
    description: Option<String>,
    metadata: BTreeMap<String, String>,
    automatic_payment_methods: Option<bool>,
    setup_future_usage: Option<String>,
    card: Option<TestCard>,
    payment_method: Option<String>,
    latest_charge: Option<String>,
    last_payment_error: Option<Value>,
    next_action: Option<Value>,
    return_url: Option<String>,
    canceled_at: Option<i64>,
    cancellation_reason: Option<String>,
    /// Every idempotency key of a request that acted on the intent.
    idempotency_keys: Vec<String>,
}

impl Intent {
    fn manual_capture(&self) -> bool {
        self.capture_method == "manual"
    }
}

#[derive(Debug, Clone)]
struct Endpoint {
    id: String,
    url: String,
    enabled_events: Vec<String>,
    secret: String,
    created: i64,
}

impl Endpoint {
    fn accepts(&self, kind: &str) -> bool {
        self.enabled_events.iter().any(|e| e == "*" || e == kind)
    }

    fn target(&self) -> Target {
        Target {
            endpoint: self.id.clone(),
            url: self.url.clone(),
            secret: self.secret.clone(),
        }
    }
}

/// The first answer to an idempotency key.
#[derive(Debug)]
struct Stored {
    fingerprint: String,
    status: StatusCode,
    body: Value,
}

#[derive(Debug)]
struct Account {
    id: String,
    intents: HashMap<String, Intent>,
    idempotency: HashMap<String, Stored>,
    endpoints: Vec<Endpoint>,
}

impl Account {
    fn new(secret_key: &str) -> Self {
        Self {
            id: account_id(secret_key),
            intents: HashMap::new(),
            idempotency: HashMap::new(),
            endpoints: Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
struct Target {
    endpoint: String,
    url: String,
    secret: String,
}

#[derive(Debug)]
struct AttemptRecord {
    at: i64,
    status: Option<u16>,
    error: Option<String>,
}

#[derive(Debug)]
struct Delivery {
    endpoint: String,
    url: String,
    attempts: Vec<AttemptRecord>,
}

#[derive(Debug)]
struct EventRecord {
    account: String,
    intent_id: String,
    event: Value,
    deliveries: Vec<Delivery>,
}

/// An event to deliver: its index in the log and the endpoints that want it.
#[derive(Debug)]
struct Outgoing {
    event: usize,
    intent_id: String,
    targets: Vec<Target>,
}

/// `POST /_sim/faults`.
#[derive(Debug, Clone, Copy, Default)]
struct Faults {
    fail_next_requests: u32,
    latency_ms: u64,
    duplicate_webhooks: u32,
    reorder_webhooks: bool,
}

#[derive(Debug, Default)]
struct SimState {
    base_url: String,
    /// By secret key.
    accounts: HashMap<String, Account>,
    events: Vec<EventRecord>,
    faults: Faults,
    /// Events held back per intent by `reorder_webhooks`.
    held: HashMap<String, Vec<Outgoing>>,
}

#[derive(Debug, Clone)]
struct Sim {
    state: Arc<Mutex<SimState>>,
    http: reqwest::Client,
}

// ---- JSON shapes ----

fn intent_json(i: &Intent) -> Value {
    let mut object = json!({
        "id": i.id,
        "object": "payment_intent",
        "amount": i.amount,
        "amount_capturable": i.amount_capturable,
        "amount_details": {"tip": {}},
        "amount_received": i.amount_received,
        "application": null,
        "application_fee_amount": null,
        "automatic_payment_methods": i.automatic_payment_methods
            .map(|enabled| json!({"enabled": enabled, "allow_redirects": "always"})),
        "canceled_at": i.canceled_at,
        "cancellation_reason": i.cancellation_reason,
        "capture_method": i.capture_method,
        "client_secret": i.client_secret,
        "confirmation_method": "automatic",
        "created": i.created,
        "currency": i.currency,
        "customer": null,
        "description": i.description,
        "invoice": null,
        "last_payment_error": i.last_payment_error,
    });
    let rest = json!({
        "latest_charge": i.latest_charge,
        "livemode": false,
        "metadata": i.metadata,
        "next_action": i.next_action,
        "on_behalf_of": null,
        "payment_method": i.payment_method,
        "payment_method_configuration_details": null,
        "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
        "payment_method_types": ["card"],
        "processing": null,
        "receipt_email": null,
        "review": null,
        "setup_future_usage": i.setup_future_usage,
        "shipping": null,
        "source": null,
        "statement_descriptor": null,
        "statement_descriptor_suffix": null,
        "status": i.status.as_str(),
        "transfer_data": null,
        "transfer_group": null,
    });
    if let (Some(object), Value::Object(rest)) = (object.as_object_mut(), rest) {
        object.extend(rest);
    }
    object
}

/// The intent's latest charge, as `charge.refunded` carries it and `expand[]=latest_charge`
/// shows it (with the intent's metadata). `amount_refunded` counts the refunds and the
/// released authorisation; `refunded` is whether that is all of the charge.
fn charge_json(i: &Intent) -> Value {
    // A charge is made at every attempt; back at requires_payment_method, the last one failed.
    let failed = i.status == Status::RequiresPaymentMethod && i.last_payment_error.is_some();
    let amount_refunded = i.amount_refunded + i.amount_released;
    json!({
        "id": i.latest_charge,
        "object": "charge",
        "amount": i.amount,
        "amount_captured": i.amount_received,
        "amount_refunded": amount_refunded,
        "captured": i.amount_received > 0,
        "created": i.created,
        "currency": i.currency,
        "livemode": false,
        "metadata": i.metadata,
        "paid": !failed,
        "payment_intent": i.id,
        "payment_method": i.payment_method,
        "refunded": !failed && amount_refunded >= i.amount,
        "status": if failed { "failed" } else { "succeeded" },
    })
}

fn endpoint_json(e: &Endpoint) -> Value {
    json!({
        "id": e.id,
        "object": "webhook_endpoint",
        "api_version": API_VERSION,
        "created": e.created,
        "enabled_events": e.enabled_events,
        "livemode": false,
        "metadata": {},
        "secret": e.secret,
        "status": "enabled",
        "url": e.url,
    })
}

fn declined_error(i: &Intent) -> Value {
    json!({
        "type": "card_error",
        "code": "card_declined",
        "decline_code": "generic_decline",
        "message": "Your card was declined.",
        "charge": i.latest_charge,
        "payment_method": {"id": i.payment_method, "object": "payment_method", "type": "card"},
    })
}

fn authentication_error(i: &Intent) -> Value {
    json!({
        "type": "invalid_request_error",
        "code": "payment_intent_authentication_failure",
        "message": "3-D Secure authentication failed; the shopper can try another payment method.",
        "payment_method": {"id": i.payment_method, "object": "payment_method", "type": "card"},
    })
}

// ---- operations (under the lock) ----

/// An event raised by an operation, recorded and delivered once the operation is done.
#[derive(Debug)]
struct NewEvent {
    kind: &'static str,
    intent_id: String,
    object: Value,
}

/// What an operation works with: one account, and the events it raises.
#[derive(Debug)]
struct Call<'a> {
    account: &'a mut Account,
    base_url: &'a str,
    events: Vec<NewEvent>,
    /// The intent the operation acted on, to list the idempotency key under it.
    touched: Option<String>,
}

impl Call<'_> {
    fn intent(&mut self, id: &str) -> Result<&mut Intent, ApiError> {
        self.touched = Some(id.to_owned());
        self.account
            .intents
            .get_mut(id)
            .ok_or_else(|| ApiError::no_such("payment_intent", id, "intent"))
    }

    fn emit(&mut self, kind: &'static str, intent_id: &str, object: Value) {
        self.events.push(NewEvent {
            kind,
            intent_id: intent_id.to_owned(),
            object,
        });
    }
}

type Op<'p> = Box<dyn FnOnce(&mut Call<'_>) -> Result<Value, ApiError> + Send + 'p>;

const CREATE_PARAMS: &[&str] = &[
    "amount",
    "currency",
    "capture_method",
    "description",
    "metadata[",
    "automatic_payment_methods[enabled]",
    "setup_future_usage",
    "payment_method",
    "confirm",
    "return_url",
];

fn create_intent(call: &mut Call<'_>, params: &Params) -> Result<Value, ApiError> {
    params.only(CREATE_PARAMS)?;
    let amount = params
        .positive("amount")?
        .ok_or_else(|| ApiError::missing("amount"))?;
    let currency = params.currency()?;
    let capture_method = params
        .one_of(
            "capture_method",
            &["automatic", "automatic_async", "manual"],
        )?
        .unwrap_or("automatic_async");
    let setup_future_usage = params.one_of("setup_future_usage", &["off_session", "on_session"])?;
    let card = params
        .get("payment_method")
        .map(TestCard::parse)
        .transpose()?;
    let confirm = params.boolean("confirm")?.unwrap_or(false);
    if params.get("return_url").is_some() && !confirm {
        return Err(ApiError::invalid(
            None,
            "return_url",
            "return_url can only be given together with confirm=true.",
        ));
    }
    let id = random_id("pi_", 24);
    let intent = Intent {
        seq: NEXT_SEQ.fetch_add(1, Ordering::Relaxed),
        client_secret: format!("{id}_secret_{}", random_alnum(25)),
        id: id.clone(),
        created: now(),
        amount,
        amount_capturable: 0,
        amount_received: 0,
        amount_refunded: 0,
        amount_released: 0,
        currency,
        status: if card.is_some() {
            Status::RequiresConfirmation
        } else {
            Status::RequiresPaymentMethod
        },
        capture_method: capture_method.to_owned(),
        description: params.get("description").map(str::to_owned),
        metadata: params.metadata(),
        automatic_payment_methods: params.boolean("automatic_payment_methods[enabled]")?,
        setup_future_usage: setup_future_usage.map(str::to_owned),
        card,
        payment_method: None,
        latest_charge: None,
        last_payment_error: None,
        next_action: None,
        return_url: None,
        canceled_at: None,
        cancellation_reason: None,
        idempotency_keys: Vec::new(),
    };
    let object = intent_json(&intent);
    call.account.intents.insert(id.clone(), intent);
    call.touched = Some(id.clone());
    call.emit("payment_intent.created", &id, object.clone());
    if confirm {
        return confirm_intent(call, &id, None, params.get("return_url"));
    }
    Ok(object)
}

fn confirm_op(call: &mut Call<'_>, id: &str, params: &Params) -> Result<Value, ApiError> {
    params.only(&["payment_method", "return_url"])?;
    let card = params
        .get("payment_method")
        .map(TestCard::parse)
        .transpose()?;
    confirm_intent(call, id, card, params.get("return_url"))
}

/// Confirms with a test card: authorised, declined (HTTP 402, as Stripe answers a
/// server-side confirm), or waiting for 3-D Secure.
fn confirm_intent(
    call: &mut Call<'_>,
    id: &str,
    card: Option<TestCard>,
    return_url: Option<&str>,
) -> Result<Value, ApiError> {
    let base_url = call.base_url;
    let intent = call.intent(id)?;
    if !matches!(
        intent.status,
        Status::RequiresPaymentMethod | Status::RequiresConfirmation
    ) {
        return Err(ApiError::state(
            "payment_intent_unexpected_state",
            format!(
                "This PaymentIntent cannot be confirmed: its status is {}.",
                intent.status.as_str()
            ),
        ));
    }
    let Some(card) = card.or(intent.card) else {
        return Err(ApiError::missing("payment_method"));
    };
    intent.card = Some(card);
    intent.payment_method = Some(random_id("pm_", 24));
    if let Some(url) = return_url {
        intent.return_url = Some(url.to_owned());
    }
    let kind = apply_card(intent, card, base_url);
    let object = intent_json(intent);
    let declined = (card == TestCard::Declined).then(|| declined_response(intent, &object));
    call.emit(kind, id, object.clone());
    match declined {
        Some(error) => Err(error),
        None => Ok(object),
    }
}

fn declined_response(intent: &Intent, object: &Value) -> ApiError {
    let mut extra = Map::new();
    extra.insert("decline_code".into(), json!("generic_decline"));
    extra.insert("charge".into(), json!(intent.latest_charge));
    extra.insert("payment_intent".into(), object.clone());
    ApiError {
        code: Some("card_declined"),
        saved: true,
        extra: Some(Box::new(extra)),
        ..ApiError::new(
            StatusCode::PAYMENT_REQUIRED,
            "card_error",
            "Your card was declined.",
        )
    }
}

/// The card's outcome; returns the event it raises.
fn apply_card(intent: &mut Intent, card: TestCard, base_url: &str) -> &'static str {
    intent.last_payment_error = None;
    intent.next_action = None;
    match card {
        TestCard::Visa => authorise(intent),
        TestCard::Declined => {
            intent.latest_charge = Some(random_id("ch_", 24));
            intent.status = Status::RequiresPaymentMethod;
            intent.last_payment_error = Some(declined_error(intent));
            "payment_intent.payment_failed"
        }
        TestCard::Authentication => {
            intent.status = Status::RequiresAction;
            intent.next_action = Some(json!({
                "type": "redirect_to_url",
                "redirect_to_url": {
                    "url": format!("{base_url}/_sim/3ds/{}", intent.id),
                    "return_url": intent.return_url,
                },
            }));
            "payment_intent.requires_action"
        }
    }
}

fn authorise(intent: &mut Intent) -> &'static str {
    intent.latest_charge = Some(random_id("ch_", 24));
    if intent.manual_capture() {
        intent.status = Status::RequiresCapture;
        intent.amount_capturable = intent.amount;
        "payment_intent.amount_capturable_updated"
    } else {
        intent.status = Status::Succeeded;
        intent.amount_received = intent.amount;
        "payment_intent.succeeded"
    }
}

/// The shopper's answer on the 3-D Secure page.
fn authenticate(call: &mut Call<'_>, id: &str, complete: bool) -> Result<Value, ApiError> {
    let intent = call.intent(id)?;
    if intent.status != Status::RequiresAction {
        return Err(ApiError::state(
            "payment_intent_unexpected_state",
            format!(
                "This PaymentIntent is not waiting for authentication: its status is {}.",
                intent.status.as_str()
            ),
        ));
    }
    intent.next_action = None;
    let kind = if complete {
        authorise(intent)
    } else {
        intent.status = Status::RequiresPaymentMethod;
        intent.last_payment_error = Some(authentication_error(intent));
        "payment_intent.payment_failed"
    };
    let object = intent_json(intent);
    call.emit(kind, id, object.clone());
    Ok(object)
}

fn capture_op(call: &mut Call<'_>, id: &str, params: &Params) -> Result<Value, ApiError> {
    params.only(&["amount_to_capture"])?;
    let requested = params.positive("amount_to_capture")?;
    let intent = call.intent(id)?;
    if intent.status != Status::RequiresCapture {
        return Err(ApiError::state(
            "payment_intent_unexpected_state",
            format!(
                "This PaymentIntent could not be captured: its status is {}, not requires_capture.",
                intent.status.as_str()
            ),
        ));
    }
    let amount = requested.unwrap_or(intent.amount_capturable);
    if amount > intent.amount_capturable {
        return Err(ApiError::invalid(
            Some("amount_too_large"),
            "amount_to_capture",
            format!(
                "amount_to_capture ({amount}) is more than amount_capturable ({}).",
                intent.amount_capturable
            ),
        ));
    }
    intent.amount_received = amount;
    intent.amount_released = intent.amount_capturable - amount;
    intent.amount_capturable = 0;
    intent.status = Status::Succeeded;
    let object = intent_json(intent);
    call.emit("payment_intent.succeeded", id, object.clone());
    Ok(object)
}

const CANCELLATION_REASONS: &[&str] = &[
    "duplicate",
    "fraudulent",
    "requested_by_customer",
    "abandoned",
];

fn cancel_op(call: &mut Call<'_>, id: &str, params: &Params) -> Result<Value, ApiError> {
    params.only(&["cancellation_reason"])?;
    let reason = params.one_of("cancellation_reason", CANCELLATION_REASONS)?;
    let intent = call.intent(id)?;
    if matches!(intent.status, Status::Succeeded | Status::Canceled) {
        return Err(ApiError::state(
            "payment_intent_unexpected_state",
            format!(
                "This PaymentIntent cannot be canceled: its status is {}.",
                intent.status.as_str()
            ),
        ));
    }
    intent.status = Status::Canceled;
    intent.canceled_at = Some(now());
    intent.cancellation_reason = reason.map(str::to_owned);
    // An authorisation is voided: its charge shows the whole amount as refunded.
    intent.amount_released = intent.amount_capturable;
    intent.amount_capturable = 0;
    intent.next_action = None;
    let object = intent_json(intent);
    call.emit("payment_intent.canceled", id, object.clone());
    Ok(object)
}

fn refund_op(call: &mut Call<'_>, params: &Params) -> Result<Value, ApiError> {
    params.only(&["payment_intent", "amount", "reason", "metadata["])?;
    let id = params.required("payment_intent")?;
    let requested = params.positive("amount")?;
    let reason = params.one_of(
        "reason",
        &["duplicate", "fraudulent", "requested_by_customer"],
    )?;
    let intent = call.intent(id).map_err(|_| ApiError {
        status: StatusCode::BAD_REQUEST,
        ..ApiError::no_such("payment_intent", id, "payment_intent")
    })?;
    let left = intent.amount_received - intent.amount_refunded;
    check_refundable(intent, left)?;
    let amount = requested.unwrap_or(left);
    if amount > left {
        return Err(ApiError::invalid(
            Some("amount_too_large"),
            "amount",
            format!("Refund amount ({amount}) is more than what is left to refund ({left})."),
        ));
    }
    intent.amount_refunded += amount;
    let refund = json!({
        "id": random_id("re_", 24),
        "object": "refund",
        "amount": amount,
        "balance_transaction": null,
        "charge": intent.latest_charge,
        "created": now(),
        "currency": intent.currency,
        "metadata": params.metadata(),
        "payment_intent": intent.id,
        "reason": reason,
        "status": "succeeded",
    });
    let charge = charge_json(intent);
    call.emit("charge.refunded", id, charge);
    Ok(refund)
}

fn check_refundable(intent: &Intent, left: i64) -> Result<(), ApiError> {
    if intent.status != Status::Succeeded {
        return Err(ApiError::state(
            "payment_intent_unexpected_state",
            format!(
                "This PaymentIntent has no successful charge to refund: its status is {}.",
                intent.status.as_str()
            ),
        ));
    }
    if left <= 0 {
        return Err(ApiError::state(
            "charge_already_refunded",
            format!(
                "Charge {} has already been refunded.",
                intent.latest_charge.as_deref().unwrap_or("")
            ),
        ));
    }
    Ok(())
}

fn create_endpoint(call: &mut Call<'_>, params: &Params) -> Result<Value, ApiError> {
    params.only(&[
        "url",
        "enabled_events[",
        "description",
        "api_version",
        "metadata[",
        "secret",
    ])?;
    let url = params.required("url")?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(ApiError::invalid(
            Some("url_invalid"),
            "url",
            format!("Invalid URL: {url}"),
        ));
    }
    let enabled_events = params.list("enabled_events");
    if enabled_events.is_empty() {
        return Err(ApiError::missing("enabled_events"));
    }
    let endpoint = Endpoint {
        id: random_id("we_", 24),
        url: url.to_owned(),
        enabled_events,
        // Simulator-only: a fixed secret lets tests and the demo configure the receiver
        // before the endpoint exists.
        secret: params
            .get("secret")
            .map_or_else(|| random_id("whsec_", 32), str::to_owned),
        created: now(),
    };
    let object = endpoint_json(&endpoint);
    call.account.endpoints.push(endpoint);
    Ok(object)
}

// ---- requests ----

/// The account of the request's secret key.
fn api_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let bearer = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(key) = bearer.filter(|k| !k.is_empty()) else {
        return Err(ApiError::unauthorized(
            "You did not provide an API key. Send it as 'Authorization: Bearer sk_test_…'.",
        ));
    };
    match key.strip_prefix("sk_test_") {
        Some(rest) if !rest.is_empty() => Ok(key.to_owned()),
        _ => Err(ApiError::unauthorized(format!(
            "Invalid API Key provided: {}",
            mask(key)
        ))),
    }
}

/// A key as Stripe echoes it in errors: the start and the last four characters.
fn mask(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 12 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..8].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 12))
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key) if !key.is_empty() && key.len() <= MAX_IDEMPOTENCY_KEY => Ok(Some(key.to_owned())),
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            format!("Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} ASCII characters."),
        )),
    }
}

impl Stored {
    fn replay(&self, key: &str, fingerprint: &str) -> Response {
        if self.fingerprint != fingerprint {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "idempotency_error",
                format!(
                    "Idempotency key '{key}' was first used with other parameters or another \
                     endpoint; use a new key for a different request."
                ),
            )
            .into_response();
        }
        let mut response = (self.status, axum::Json(self.body.clone())).into_response();
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
        response
    }
}

/// Runs an operation against one account and records the events it raised; returns its
/// result, the intent it touched, and what to deliver.
fn run_op(
    state: &mut SimState,
    account_key: &str,
    request: &Value,
    op: Op<'_>,
) -> (Result<Value, ApiError>, Option<String>, Vec<Outgoing>) {
    let SimState {
        accounts,
        base_url,
        events,
        ..
    } = state;
    let account = accounts
        .entry(account_key.to_owned())
        .or_insert_with(|| Account::new(account_key));
    let mut call = Call {
        account,
        base_url: base_url.as_str(),
        events: Vec::new(),
        touched: None,
    };
    let result = op(&mut call);
    let Call {
        account,
        events: raised,
        touched,
        ..
    } = call;
    let outgoing = record_events(events, account, request, raised);
    (result, touched, outgoing)
}

fn record_events(
    log: &mut Vec<EventRecord>,
    account: &Account,
    request: &Value,
    raised: Vec<NewEvent>,
) -> Vec<Outgoing> {
    raised
        .into_iter()
        .map(|new| {
            let targets: Vec<Target> = account
                .endpoints
                .iter()
                .filter(|e| e.accepts(new.kind))
                .map(Endpoint::target)
                .collect();
            let event = json!({
                "id": random_id("evt_", 24),
                "object": "event",
                "api_version": API_VERSION,
                "created": now(),
                "data": {"object": new.object},
                "livemode": false,
                "pending_webhooks": targets.len(),
                "request": request,
                "type": new.kind,
            });
            log.push(EventRecord {
                account: account.id.clone(),
                intent_id: new.intent_id.clone(),
                event,
                deliveries: Vec::new(),
            });
            Outgoing {
                event: log.len() - 1,
                intent_id: new.intent_id,
                targets,
            }
        })
        .collect()
}

impl Sim {
    fn new() -> Self {
        let http = reqwest::Client::builder()
            .timeout(DELIVERY_TIMEOUT)
            .no_proxy()
            .build()
            .unwrap_or_default();
        Self {
            state: Arc::default(),
            http,
        }
    }

    /// The state; a panic elsewhere while holding the lock leaves it usable.
    fn lock(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Latency, then an injected failure: both before the API looks at the request, as a
    /// failing load balancer would, so a retry with the same key executes afresh.
    async fn gate(&self) -> Result<(), ApiError> {
        let latency = self.lock().faults.latency_ms;
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        let mut state = self.lock();
        if state.faults.fail_next_requests == 0 {
            return Ok(());
        }
        state.faults.fail_next_requests -= 1;
        Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "An error occurred with our API (injected by the simulator).",
        ))
    }

    /// An API POST: gate, key, parameters, idempotency, the operation, the webhooks.
    async fn api_post(
        &self,
        headers: &HeaderMap,
        path: &str,
        body: &[u8],
        op: impl FnOnce(&mut Call<'_>, &Params) -> Result<Value, ApiError> + Send,
    ) -> Response {
        let prepared = async {
            self.gate().await?;
            Ok::<_, ApiError>((
                api_key(headers)?,
                idempotency_key(headers)?,
                Params::parse(body)?,
            ))
        };
        let (key, idempotency_key, params) = match prepared.await {
            Ok(prepared) => prepared,
            Err(error) => return error.into_response(),
        };
        let fingerprint = format!("POST {path}?{}", params.canonical());
        let (response, outgoing) = self.execute(
            &key,
            idempotency_key,
            &fingerprint,
            Box::new(|call: &mut Call<'_>| op(call, &params)),
        );
        self.dispatch(outgoing);
        response
    }

    fn execute(
        &self,
        key: &str,
        idempotency_key: Option<String>,
        fingerprint: &str,
        op: Op<'_>,
    ) -> (Response, Vec<Outgoing>) {
        let mut state = self.lock();
        if let Some(idem) = &idempotency_key {
            let stored = state
                .accounts
                .get(key)
                .and_then(|a| a.idempotency.get(idem));
            if let Some(stored) = stored {
                return (stored.replay(idem, fingerprint), Vec::new());
            }
        }
        let request = json!({"id": random_id("req_", 14), "idempotency_key": idempotency_key});
        let (result, touched, outgoing) = run_op(&mut state, key, &request, op);
        let (status, body, saved) = match result {
            Ok(body) => (StatusCode::OK, body, true),
            Err(error) => (error.status, error.body(), error.saved),
        };
        if let (Some(idem), true) = (idempotency_key, saved) {
            remember(&mut state, key, idem, fingerprint, status, &body, touched);
        }
        ((status, axum::Json(body)).into_response(), outgoing)
    }

    /// Runs a shopper's action (the 3-D Secure and demo pages) on the account owning the
    /// intent; `None` when no account has it.
    fn on_owner(&self, intent_id: &str, op: Op<'_>) -> Option<(Result<Value, ApiError>, Intent)> {
        let (result, intent, outgoing) = {
            let mut state = self.lock();
            let owner = owner_of(&state, intent_id)?;
            // Not caused by an API request: Stripe sends nulls then.
            let request = json!({"id": null, "idempotency_key": null});
            let (result, _, outgoing) = run_op(&mut state, &owner, &request, op);
            let intent = state.accounts.get(&owner)?.intents.get(intent_id)?.clone();
            (result, intent, outgoing)
        };
        self.dispatch(outgoing);
        Some((result, intent))
    }
}

fn owner_of(state: &SimState, intent_id: &str) -> Option<String> {
    state
        .accounts
        .iter()
        .find(|(_, a)| a.intents.contains_key(intent_id))
        .map(|(key, _)| key.clone())
}

/// Keeps the first answer for the key, and lists the key under the intent it acted on.
fn remember(
    state: &mut SimState,
    key: &str,
    idempotency_key: String,
    fingerprint: &str,
    status: StatusCode,
    body: &Value,
    touched: Option<String>,
) {
    let Some(account) = state.accounts.get_mut(key) else {
        return;
    };
    if let Some(intent) = touched.and_then(|id| account.intents.get_mut(&id))
        && !intent.idempotency_keys.contains(&idempotency_key)
    {
        intent.idempotency_keys.push(idempotency_key.clone());
    }
    account.idempotency.insert(
        idempotency_key,
        Stored {
            fingerprint: fingerprint.to_owned(),
            status,
            body: body.clone(),
        },
    );
}

// ---- webhooks ----

impl Sim {
    fn dispatch(&self, outgoing: Vec<Outgoing>) {
        let faults = self.lock().faults;
        for out in outgoing.into_iter().filter(|o| !o.targets.is_empty()) {
            if faults.reorder_webhooks {
                self.hold(out);
            } else {
                for target in out.targets {
                    for _ in 0..=faults.duplicate_webhooks {
                        let (sim, target) = (self.clone(), target.clone());
                        tokio::spawn(async move { sim.deliver(out.event, &target).await });
                    }
                }
            }
        }
    }

    /// Holds an intent's events; the first one held starts the timer that releases them.
    fn hold(&self, out: Outgoing) {
        let intent_id = out.intent_id.clone();
        let first = {
            let mut state = self.lock();
            let queue = state.held.entry(intent_id.clone()).or_default();
            queue.push(out);
            queue.len() == 1
        };
        if first {
            let sim = self.clone();
            tokio::spawn(async move { sim.release(&intent_id).await });
        }
    }

    /// Delivers the held events newest first, one after the other so the order holds.
    async fn release(&self, intent_id: &str) {
        tokio::time::sleep(REORDER_HOLD).await;
        let (held, copies) = {
            let mut state = self.lock();
            let held = state.held.remove(intent_id).unwrap_or_default();
            (held, state.faults.duplicate_webhooks)
        };
        for out in held.into_iter().rev() {
            for target in &out.targets {
                for _ in 0..=copies {
                    self.deliver(out.event, target).await;
                }
            }
        }
    }

    /// One delivery of one event to one endpoint, retried on failure, every attempt
    /// recorded.
    async fn deliver(&self, event: usize, target: &Target) {
        let Some((body, slot)) = self.open_delivery(event, target) else {
            return;
        };
        for attempt in 0..=RETRY_DELAYS.len() {
            let outcome = self.post_signed(target, &body).await;
            let delivered = matches!(outcome, Ok(status) if (200..300).contains(&status));
            self.record_attempt(event, slot, outcome);
            if delivered {
                return;
            }
            if let Some(delay) = RETRY_DELAYS.get(attempt) {
                tokio::time::sleep(*delay).await;
            }
        }
    }

    fn open_delivery(&self, event: usize, target: &Target) -> Option<(Vec<u8>, usize)> {
        let mut state = self.lock();
        let record = state.events.get_mut(event)?;
        let body = serde_json::to_vec(&record.event).ok()?;
        record.deliveries.push(Delivery {
            endpoint: target.endpoint.clone(),
            url: target.url.clone(),
            attempts: Vec::new(),
        });
        Some((body, record.deliveries.len() - 1))
    }

    async fn post_signed(&self, target: &Target, body: &[u8]) -> Result<u16, String> {
        // Signed afresh at every attempt, as Stripe does: the timestamp is the attempt's.
        let t = now();
        let signature = format!("t={t},v1={}", sign(&target.secret, t, body));
        self.http
            .post(&target.url)
            .header("content-type", "application/json; charset=utf-8")
            .header("stripe-signature", signature)
            .header(
                "user-agent",
                "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            )
            .body(body.to_vec())
            .send()
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| e.to_string())
    }

    fn record_attempt(&self, event: usize, slot: usize, outcome: Result<u16, String>) {
        let mut state = self.lock();
        let Some(delivery) = state
            .events
            .get_mut(event)
            .and_then(|e| e.deliveries.get_mut(slot))
        else {
            return;
        };
        let (status, error) = match outcome {
            Ok(status) => (Some(status), None),
            Err(error) => (None, Some(error)),
        };
        delivery.attempts.push(AttemptRecord {
            at: now(),
            status,
            error,
        });
    }
}

// ---- API handlers ----

async fn create(State(sim): State<Sim>, headers: HeaderMap, body: Bytes) -> Response {
    sim.api_post(&headers, "/v1/payment_intents", &body, create_intent)
        .await
}

async fn retrieve(
    State(sim): State<Sim>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let checked = sim
        .gate()
        .await
        .and_then(|()| api_key(&headers))
        .and_then(|key| Ok((key, expands_latest_charge(query.as_deref())?)));
    let (key, expand_charge) = match checked {
        Ok(checked) => checked,
        Err(error) => return error.into_response(),
    };
    let state = sim.lock();
    match state.accounts.get(&key).and_then(|a| a.intents.get(&id)) {
        Some(intent) => {
            let mut object = intent_json(intent);
            if expand_charge && intent.latest_charge.is_some() {
                object["latest_charge"] = charge_json(intent);
            }
            axum::Json(object).into_response()
        }
        None => ApiError::no_such("payment_intent", &id, "intent").into_response(),
    }
}

/// A retrieve's query: `expand[]=latest_charge` (or `expand[0]=…`) is the one expansion the
/// simulator knows; anything else is refused as Stripe refuses it.
fn expands_latest_charge(query: Option<&str>) -> Result<bool, ApiError> {
    let params = Params::parse(query.unwrap_or_default().as_bytes())?;
    params.only(&["expand["])?;
    let mut latest_charge = false;
    for path in params.list("expand") {
        if path != "latest_charge" {
            return Err(ApiError::invalid(
                None,
                "expand",
                format!("This property cannot be expanded ({path})."),
            ));
        }
        latest_charge = true;
    }
    Ok(latest_charge)
}

async fn confirm(
    State(sim): State<Sim>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/v1/payment_intents/{id}/confirm");
    sim.api_post(&headers, &path, &body, |call, params| {
        confirm_op(call, &id, params)
    })
    .await
}

async fn capture(
    State(sim): State<Sim>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/v1/payment_intents/{id}/capture");
    sim.api_post(&headers, &path, &body, |call, params| {
        capture_op(call, &id, params)
    })
    .await
}

async fn cancel(
    State(sim): State<Sim>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/v1/payment_intents/{id}/cancel");
    sim.api_post(&headers, &path, &body, |call, params| {
        cancel_op(call, &id, params)
    })
    .await
}

async fn refund(State(sim): State<Sim>, headers: HeaderMap, body: Bytes) -> Response {
    sim.api_post(&headers, "/v1/refunds", &body, refund_op)
        .await
}

async fn webhook_endpoint(State(sim): State<Sim>, headers: HeaderMap, body: Bytes) -> Response {
    sim.api_post(&headers, "/v1/webhook_endpoints", &body, create_endpoint)
        .await
}

async fn unknown(method: Method, uri: Uri) -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        format!("Unrecognized request URL ({method}: {}).", uri.path()),
    )
    .into_response()
}

// ---- the shopper's pages ----

fn escape_html(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

fn amount_text(intent: &Intent) -> String {
    format!(
        "{}.{:02} {}",
        intent.amount / 100,
        intent.amount % 100,
        intent.currency.to_ascii_uppercase()
    )
}

fn page(title: &str, content: &str) -> Response {
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body style=\"font-family: sans-serif; max-width: 32em; margin: 3em auto\">\
         <p><small>Stripe simulator</small></p>{content}</body></html>"
    ))
    .into_response()
}

fn find_intent(sim: &Sim, id: &str) -> Option<Intent> {
    let state = sim.lock();
    let owner = owner_of(&state, id)?;
    state.accounts.get(&owner)?.intents.get(id).cloned()
}

/// Where the shopper goes back to, with the query Stripe appends.
fn return_to(url: &str, intent: &Intent) -> Response {
    let outcome = match intent.status {
        Status::RequiresCapture | Status::Succeeded => "succeeded",
        Status::RequiresAction => "processing",
        _ => "failed",
    };
    let query = serde_urlencoded::to_string([
        ("payment_intent", intent.id.as_str()),
        (
            "payment_intent_client_secret",
            intent.client_secret.as_str(),
        ),
        ("redirect_status", outcome),
    ])
    .unwrap_or_default();
    let separator = if url.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{url}{separator}{query}")).into_response()
}

fn no_intent(id: &str) -> Response {
    ApiError::no_such("payment_intent", id, "intent").into_response()
}

async fn three_ds_page(State(sim): State<Sim>, Path(id): Path<String>) -> Response {
    let Some(intent) = find_intent(&sim, &id) else {
        return no_intent(&id);
    };
    let content = if intent.status == Status::RequiresAction {
        "<form method=\"post\"><button name=\"outcome\" value=\"complete\">Complete</button> \
         <button name=\"outcome\" value=\"fail\">Fail</button></form>"
            .to_owned()
    } else {
        format!(
            "<p>Nothing to authenticate: the payment is {}.</p>",
            intent.status.as_str()
        )
    };
    page(
        "3-D Secure",
        &format!(
            "<h1>3-D Secure</h1><p>Confirm the payment of {} ({}).</p>{content}",
            amount_text(&intent),
            escape_html(intent.description.as_deref().unwrap_or(""))
        ),
    )
}

async fn three_ds_submit(State(sim): State<Sim>, Path(id): Path<String>, body: Bytes) -> Response {
    let complete = match Params::parse(&body).map(|p| p.get("outcome").map(str::to_owned)) {
        Ok(Some(outcome)) if outcome == "complete" => true,
        Ok(Some(outcome)) if outcome == "fail" => false,
        Ok(_) => {
            return ApiError::invalid(None, "outcome", "outcome must be complete or fail.")
                .into_response();
        }
        Err(error) => return error.into_response(),
    };
    let op: Op<'_> = Box::new(|call: &mut Call<'_>| authenticate(call, &id, complete));
    let Some((result, intent)) = sim.on_owner(&id, op) else {
        return no_intent(&id);
    };
    match (result, &intent.return_url) {
        (Err(error), _) => error.into_response(),
        (Ok(_), Some(url)) => return_to(url, &intent),
        (Ok(object), None) => axum::Json(object).into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct PayQuery {
    return_url: Option<String>,
}

async fn pay_page(
    State(sim): State<Sim>,
    Path(id): Path<String>,
    Query(query): Query<PayQuery>,
) -> Response {
    let Some(intent) = find_intent(&sim, &id) else {
        return no_intent(&id);
    };
    let return_url = query.return_url.or(intent.return_url.clone());
    let hidden = return_url.map_or_else(String::new, |url| {
        format!(
            "<input type=\"hidden\" name=\"return_url\" value=\"{}\">",
            escape_html(&url)
        )
    });
    let content = format!(
        "<h1>Pay {}</h1><p>{}</p><form method=\"post\">{hidden}\
         <button name=\"card\" value=\"visa\">Pay</button> \
         <button name=\"card\" value=\"declined\">Refuse</button> \
         <button name=\"card\" value=\"3ds\">3-D Secure</button></form>",
        amount_text(&intent),
        escape_html(intent.description.as_deref().unwrap_or("")),
    );
    page("Pay", &content)
}

async fn pay_submit(State(sim): State<Sim>, Path(id): Path<String>, body: Bytes) -> Response {
    let params = match Params::parse(&body) {
        Ok(params) => params,
        Err(error) => return error.into_response(),
    };
    let token = match params.get("card") {
        Some("visa") => "pm_card_visa",
        Some("declined") => "pm_card_chargeDeclined",
        Some("3ds") => "pm_card_authenticationRequired",
        _ => {
            return ApiError::invalid(None, "card", "card must be visa, declined or 3ds.")
                .into_response();
        }
    };
    let confirm_params = match params.get("return_url") {
        Some(url) => Params::from_pairs(&[("payment_method", token), ("return_url", url)]),
        None => Params::from_pairs(&[("payment_method", token)]),
    };
    let op: Op<'_> = Box::new(|call: &mut Call<'_>| confirm_op(call, &id, &confirm_params));
    let Some((result, intent)) = sim.on_owner(&id, op) else {
        return no_intent(&id);
    };
    let three_ds = intent
        .next_action
        .as_ref()
        .and_then(|a| a.pointer("/redirect_to_url/url"))
        .and_then(Value::as_str);
    match (result, three_ds, &intent.return_url) {
        (Ok(_), Some(url), _) => Redirect::to(url).into_response(),
        // A decline is an answer for the shopper, not an error of the page.
        (Ok(_), None, Some(url)) => return_to(url, &intent),
        (Err(error), _, Some(url)) if error.status == StatusCode::PAYMENT_REQUIRED => {
            return_to(url, &intent)
        }
        (Ok(object), None, None) => axum::Json(object).into_response(),
        (Err(error), _, _) => error.into_response(),
    }
}

// ---- control and observation ----

#[derive(Debug, Deserialize)]
struct FaultsPatch {
    fail_next_requests: Option<u32>,
    latency_ms: Option<u64>,
    duplicate_webhooks: Option<u32>,
    reorder_webhooks: Option<bool>,
}

fn faults_json(f: &Faults) -> Value {
    json!({
        "fail_next_requests": f.fail_next_requests,
        "latency_ms": f.latency_ms,
        "duplicate_webhooks": f.duplicate_webhooks,
        "reorder_webhooks": f.reorder_webhooks,
    })
}

async fn set_faults(State(sim): State<Sim>, body: Bytes) -> Response {
    let patch: FaultsPatch = match serde_json::from_slice(&body) {
        Ok(patch) => patch,
        Err(e) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                format!("Invalid faults: {e}"),
            )
            .into_response();
        }
    };
    let mut state = sim.lock();
    let faults = &mut state.faults;
    faults.fail_next_requests = patch
        .fail_next_requests
        .unwrap_or(faults.fail_next_requests);
    faults.latency_ms = patch.latency_ms.unwrap_or(faults.latency_ms);
    faults.duplicate_webhooks = patch
        .duplicate_webhooks
        .unwrap_or(faults.duplicate_webhooks);
    faults.reorder_webhooks = patch.reorder_webhooks.unwrap_or(faults.reorder_webhooks);
    axum::Json(faults_json(faults)).into_response()
}

#[derive(Debug, Deserialize)]
struct LedgerQuery {
    order_id: Option<String>,
}

fn ledger_entry(account: &Account, i: &Intent) -> Value {
    json!({
        "id": i.id,
        "account": account.id,
        "amount": i.amount,
        "currency": i.currency,
        "status": i.status.as_str(),
        "amount_capturable": i.amount_capturable,
        "amount_received": i.amount_received,
        "amount_refunded": i.amount_refunded,
        "metadata": i.metadata,
        "idempotency_keys": i.idempotency_keys,
    })
}

async fn ledger(State(sim): State<Sim>, Query(query): Query<LedgerQuery>) -> Response {
    let state = sim.lock();
    let mut intents: Vec<(&Account, &Intent)> = state
        .accounts
        .values()
        .flat_map(|a| a.intents.values().map(move |i| (a, i)))
        .filter(|(_, i)| {
            query
                .order_id
                .as_ref()
                .is_none_or(|o| i.metadata.get("order_id") == Some(o))
        })
        .collect();
    intents.sort_by_key(|(_, i)| i.seq);
    let intents: Vec<Value> = intents
        .into_iter()
        .map(|(a, i)| ledger_entry(a, i))
        .collect();
    axum::Json(json!({ "intents": intents })).into_response()
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    payment_intent: Option<String>,
}

fn delivery_json(d: &Delivery) -> Value {
    let statuses: Vec<Option<u16>> = d.attempts.iter().map(|a| a.status).collect();
    let errors: Vec<&str> = d
        .attempts
        .iter()
        .filter_map(|a| a.error.as_deref())
        .collect();
    json!({
        "endpoint": d.endpoint,
        "url": d.url,
        "attempts": d.attempts.len(),
        "statuses": statuses,
        "errors": errors,
        "last_attempt_at": d.attempts.last().map(|a| a.at),
        "delivered": d.attempts.iter().any(|a| a.status.is_some_and(|s| (200..300).contains(&s))),
    })
}

async fn events(State(sim): State<Sim>, Query(query): Query<EventsQuery>) -> Response {
    let state = sim.lock();
    let events: Vec<Value> = state
        .events
        .iter()
        .filter(|e| {
            query
                .payment_intent
                .as_ref()
                .is_none_or(|p| &e.intent_id == p)
        })
        .map(|e| {
            json!({
                "id": e.event["id"],
                "type": e.event["type"],
                "account": e.account,
                "payment_intent": e.intent_id,
                "event": e.event,
                "deliveries": e.deliveries.iter().map(delivery_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    axum::Json(json!({ "events": events })).into_response()
}

async fn resend(State(sim): State<Sim>, Path(event_id): Path<String>) -> Response {
    let outgoing = {
        let state = sim.lock();
        let Some(index) = state.events.iter().position(|e| e.event["id"] == event_id) else {
            return ApiError::no_such("event", &event_id, "id").into_response();
        };
        let record = &state.events[index];
        let kind = record.event["type"].as_str().unwrap_or_default();
        let targets: Vec<Target> = state
            .accounts
            .values()
            .filter(|a| a.id == record.account)
            .flat_map(|a| a.endpoints.iter())
            .filter(|e| e.accepts(kind))
            .map(Endpoint::target)
            .collect();
        Outgoing {
            event: index,
            intent_id: record.intent_id.clone(),
            targets,
        }
    };
    let endpoints = outgoing.targets.len();
    sim.dispatch(vec![outgoing]);
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({"id": event_id, "endpoints": endpoints})),
    )
        .into_response()
}

/// The simulator's routes.
fn router(sim: Sim) -> Router {
    Router::new()
        .route("/v1/payment_intents", post(create))
        .route("/v1/payment_intents/{id}", get(retrieve))
        .route("/v1/payment_intents/{id}/confirm", post(confirm))
        .route("/v1/payment_intents/{id}/capture", post(capture))
        .route("/v1/payment_intents/{id}/cancel", post(cancel))
        .route("/v1/refunds", post(refund))
        .route("/v1/webhook_endpoints", post(webhook_endpoint))
        .route("/_sim/3ds/{id}", get(three_ds_page).post(three_ds_submit))
        .route("/_sim/pay/{id}", get(pay_page).post(pay_submit))
        .route("/_sim/faults", post(set_faults))
        .route("/_sim/ledger", get(ledger))
        .route("/_sim/events", get(events))
        .route("/_sim/webhooks/resend/{id}", post(resend))
        .fallback(unknown)
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
    let sim = Sim::new();
    sim.lock().base_url = format!("http://{address}");
    on_bound(address);
    tracing::info!(%address, "Stripe simulator listening.");
    axum::serve(listener, router(sim))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use super::*;

    async fn start() -> String {
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(serve(
            "127.0.0.1:0".parse().unwrap(),
            std::future::pending(),
            move |address| {
                let _ = tx.send(address);
            },
        ));
        format!("http://{}", rx.await.unwrap())
    }

    fn key() -> String {
        format!("sk_test_{}", uuid::Uuid::new_v4().simple())
    }

    fn no_redirects() -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    async fn post_form(
        url: String,
        sk: &str,
        idempotency_key: Option<&str>,
        form: &[(&str, &str)],
    ) -> (u16, HeaderMap, Value) {
        let mut request = reqwest::Client::new().post(url).bearer_auth(sk).form(form);
        if let Some(k) = idempotency_key {
            request = request.header("Idempotency-Key", k);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.json().await.unwrap())
    }

    async fn api(base: &str, sk: &str, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let (status, _, body) = post_form(format!("{base}{path}"), sk, None, form).await;
        (status, body)
    }

    async fn get_json(url: String, sk: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .get(url)
            .bearer_auth(sk)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    type Form = &'static [(&'static str, &'static str)];

    const INTENT: Form = &[
        ("amount", "14900"),
        ("currency", "DKK"),
        ("capture_method", "manual"),
        ("description", "Order <o-1>"),
        ("metadata[order_id]", "o-1"),
    ];

    async fn create(base: &str, sk: &str) -> String {
        let (status, body) = api(base, sk, "/v1/payment_intents", INTENT).await;
        assert_eq!(status, 200, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    async fn confirm(base: &str, sk: &str, id: &str, method: &str) -> (u16, Value) {
        let path = format!("/v1/payment_intents/{id}/confirm");
        api(base, sk, &path, &[("payment_method", method)]).await
    }

    fn error_code(body: &Value) -> &str {
        body["error"]["code"]
            .as_str()
            .or(body["error"]["type"].as_str())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn keys_and_validation() {
        let base = start().await;
        let response = reqwest::Client::new()
            .post(format!("{base}/v1/payment_intents"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401);
        let live = "sk_live_abcdefghijkl1234";
        let (status, body) = api(&base, live, "/v1/payment_intents", INTENT).await;
        assert_eq!(status, 401);
        assert_eq!(body["error"]["type"], "invalid_request_error");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("Invalid API Key provided: "),
            "{message}"
        );
        assert!(
            message.ends_with("1234") && !message.contains(live),
            "{message}"
        );

        let sk = key();
        let cases: &[(Form, &str, &str)] = &[
            (&[("currency", "dkk")], "parameter_missing", "amount"),
            (
                &[("amount", "abc"), ("currency", "dkk")],
                "parameter_invalid_integer",
                "amount",
            ),
            (
                &[("amount", "0"), ("currency", "dkk")],
                "parameter_invalid_integer",
                "amount",
            ),
            (&[("amount", "100")], "parameter_missing", "currency"),
            (
                &[("amount", "100"), ("currency", "dkk"), ("colour", "red")],
                "parameter_unknown",
                "colour",
            ),
        ];
        for (form, code, param) in cases {
            let (status, body) = api(&base, &sk, "/v1/payment_intents", form).await;
            assert_eq!(status, 400, "{body}");
            assert_eq!(body["error"]["code"], *code, "{body}");
            assert_eq!(body["error"]["param"], *param, "{body}");
        }
        let bad_currency = [("amount", "100"), ("currency", "dk")];
        let (status, body) = api(&base, &sk, "/v1/payment_intents", &bad_currency).await;
        assert_eq!((status, &body["error"]["param"]), (400, &json!("currency")));
        let (status, body) = api(&base, &sk, "/v1/charges", &[]).await;
        assert_eq!(status, 404);
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }

    #[tokio::test]
    async fn intent_shape_and_account_isolation() {
        let base = start().await;
        let (a, b) = (key(), key());
        let (_, intent) = api(&base, &a, "/v1/payment_intents", INTENT).await;
        let id = intent["id"].as_str().unwrap();
        assert!(id.starts_with("pi_") && id.len() == 27, "{id}");
        let secret = intent["client_secret"].as_str().unwrap();
        assert!(secret.starts_with(&format!("{id}_secret_")));
        assert_eq!(intent["object"], "payment_intent");
        assert_eq!(intent["currency"], "dkk");
        assert_eq!(intent["status"], "requires_payment_method");
        assert_eq!(intent["livemode"], false);
        assert_eq!(intent["metadata"], json!({"order_id": "o-1"}));

        let url = format!("{base}/v1/payment_intents/{id}");
        assert_eq!(get_json(url.clone(), &a).await, (200, intent.clone()));
        let (status, body) = get_json(url, &b).await;
        assert_eq!(status, 404);
        assert_eq!(body["error"]["code"], "resource_missing");

        let (_, ledger) = get_json(format!("{base}/_sim/ledger"), &a).await;
        let entry = &ledger["intents"][0];
        assert_eq!(entry["account"], account_id(&a));
        assert!(!ledger.to_string().contains(&a));
    }

    #[tokio::test]
    async fn idempotency_replays_and_refuses_mismatches() {
        let base = start().await;
        let sk = key();
        let url = format!("{base}/v1/payment_intents");
        let (status, headers, first) = post_form(url.clone(), &sk, Some("k1"), INTENT).await;
        assert_eq!(status, 200);
        assert!(!headers.contains_key("idempotent-replayed"));
        let (status, headers, again) = post_form(url.clone(), &sk, Some("k1"), INTENT).await;
        assert_eq!((status, &again), (200, &first));
        assert_eq!(headers["idempotent-replayed"], "true");

        let other = [("amount", "100"), ("currency", "dkk")];
        let (status, _, body) = post_form(url.clone(), &sk, Some("k1"), &other).await;
        assert_eq!((status, error_code(&body)), (400, "idempotency_error"));
        let id = first["id"].as_str().unwrap();
        let confirm_url = format!("{url}/{id}/confirm");
        let visa = [("payment_method", "pm_card_visa")];
        let (status, _, body) = post_form(confirm_url, &sk, Some("k1"), &visa).await;
        assert_eq!((status, error_code(&body)), (400, "idempotency_error"));

        // A request that failed validation did nothing; its key is still free.
        let (status, _, _) = post_form(url.clone(), &sk, Some("k2"), &[("currency", "dkk")]).await;
        assert_eq!(status, 400);
        let (status, _, _) = post_form(url.clone(), &sk, Some("k2"), &other).await;
        assert_eq!(status, 200);
        // Keys belong to one account.
        let (status, _, body) = post_form(url, &key(), Some("k1"), &other).await;
        assert_eq!(status, 200, "{body}");

        let (_, ledger) = get_json(format!("{base}/_sim/ledger?order_id=o-1"), &sk).await;
        assert_eq!(ledger["intents"].as_array().unwrap().len(), 1);
        assert_eq!(ledger["intents"][0]["idempotency_keys"], json!(["k1"]));
    }

    #[tokio::test]
    async fn capture_cancel_and_refund_rules() {
        let base = start().await;
        let sk = key();
        let id = create(&base, &sk).await;
        let capture = format!("/v1/payment_intents/{id}/capture");
        let (status, body) = api(&base, &sk, &capture, &[]).await;
        assert_eq!(
            (status, error_code(&body)),
            (400, "payment_intent_unexpected_state")
        );
        let (status, body) = confirm(&base, &sk, &id, "pm_card_visa").await;
        assert_eq!(status, 200);
        assert_eq!(body["status"], "requires_capture");
        assert_eq!(body["amount_capturable"], 14900);
        assert!(body["latest_charge"].as_str().unwrap().starts_with("ch_"));
        assert!(body["payment_method"].as_str().unwrap().starts_with("pm_"));

        let too_much = [("amount_to_capture", "20000")];
        let (status, body) = api(&base, &sk, &capture, &too_much).await;
        assert_eq!((status, error_code(&body)), (400, "amount_too_large"));
        let (_, body) = api(&base, &sk, &capture, &[("amount_to_capture", "10000")]).await;
        assert_eq!(body["status"], "succeeded");
        assert_eq!(body["amount_received"], 10000);
        assert_eq!(body["amount_capturable"], 0);
        let cancel = format!("/v1/payment_intents/{id}/cancel");
        let (status, body) = api(&base, &sk, &cancel, &[]).await;
        assert_eq!(
            (status, error_code(&body)),
            (400, "payment_intent_unexpected_state")
        );

        let refund = |amount: Option<&'static str>| {
            let (base, sk, id) = (base.clone(), sk.clone(), id.clone());
            async move {
                let mut form = vec![("payment_intent", id.as_str())];
                form.extend(amount.map(|a| ("amount", a)));
                api(&base, &sk, "/v1/refunds", &form).await
            }
        };
        let (status, body) = refund(Some("20000")).await;
        assert_eq!((status, error_code(&body)), (400, "amount_too_large"));
        let (status, body) = refund(Some("4000")).await;
        assert_eq!(status, 200);
        assert_eq!(body["object"], "refund");
        assert_eq!(body["status"], "succeeded");
        assert_eq!(body["payment_intent"], json!(id));
        assert!(body["id"].as_str().unwrap().starts_with("re_"));
        let (_, body) = refund(None).await;
        assert_eq!(body["amount"], 6000);
        let (status, body) = refund(None).await;
        assert_eq!(
            (status, error_code(&body)),
            (400, "charge_already_refunded")
        );

        let other = create(&base, &sk).await;
        let (status, body) = api(
            &base,
            &sk,
            &format!("/v1/payment_intents/{other}/cancel"),
            &[("cancellation_reason", "abandoned")],
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["status"], "canceled");
        assert_eq!(body["cancellation_reason"], "abandoned");
        let (status, body) = api(&base, &sk, "/v1/refunds", &[("payment_intent", "pi_nope")]).await;
        assert_eq!((status, error_code(&body)), (400, "resource_missing"));
    }

    #[tokio::test]
    async fn retrieve_expands_the_latest_charge() {
        let base = start().await;
        let sk = key();
        let id = create(&base, &sk).await;
        let url = format!("{base}/v1/payment_intents/{id}");
        let expanded = format!("{url}?expand%5B%5D=latest_charge");
        // Nothing to expand yet.
        let (status, body) = get_json(expanded.clone(), &sk).await;
        assert_eq!((status, &body["latest_charge"]), (200, &Value::Null));
        confirm(&base, &sk, &id, "pm_card_visa").await;
        let (_, body) = get_json(expanded.clone(), &sk).await;
        let charge = &body["latest_charge"];
        assert_eq!(charge["object"], "charge");
        assert!(charge["id"].as_str().unwrap().starts_with("ch_"));
        assert_eq!(charge["payment_intent"], json!(id));
        assert_eq!(charge["metadata"]["order_id"], "o-1");
        assert_eq!(
            (&charge["captured"], &charge["refunded"]),
            (&json!(false), &json!(false))
        );
        let (_, plain) = get_json(url.clone(), &sk).await;
        assert_eq!(plain["latest_charge"], charge["id"]);

        // Captured 10000 of 14900: the rest is let go, booked as refunded on the charge.
        let capture = format!("/v1/payment_intents/{id}/capture");
        api(&base, &sk, &capture, &[("amount_to_capture", "10000")]).await;
        let (_, body) = get_json(expanded.clone(), &sk).await;
        let charge = &body["latest_charge"];
        assert_eq!(charge["amount_captured"], 10000);
        assert_eq!(charge["amount_refunded"], 4900);
        assert_eq!(charge["refunded"], false);
        let refund = [("payment_intent", id.as_str())];
        api(&base, &sk, "/v1/refunds", &refund).await;
        let (_, body) = get_json(expanded.clone(), &sk).await;
        // Stripe keeps a refunded intent succeeded; the refund is on the charge.
        assert_eq!(body["status"], "succeeded");
        assert_eq!(body["latest_charge"]["amount_refunded"], 14900);
        assert_eq!(body["latest_charge"]["refunded"], true);
        let (_, indexed) = get_json(format!("{url}?expand%5B0%5D=latest_charge"), &sk).await;
        assert_eq!(indexed["latest_charge"], body["latest_charge"]);

        let (status, body) = get_json(format!("{url}?expand%5B%5D=customer"), &sk).await;
        assert_eq!((status, &body["error"]["param"]), (400, &json!("expand")));
        let (status, body) = get_json(format!("{url}?colour=red"), &sk).await;
        assert_eq!((status, error_code(&body)), (400, "parameter_unknown"));
    }

    #[tokio::test]
    async fn a_declined_charge_is_failed_and_a_voided_one_refunded() {
        let base = start().await;
        let sk = key();
        let id = create(&base, &sk).await;
        confirm(&base, &sk, &id, "pm_card_chargeDeclined").await;
        let expanded = format!("{base}/v1/payment_intents/{id}?expand%5B%5D=latest_charge");
        let (_, body) = get_json(expanded.clone(), &sk).await;
        assert_eq!(body["latest_charge"]["status"], "failed");
        assert_eq!(body["latest_charge"]["paid"], false);
        confirm(&base, &sk, &id, "pm_card_visa").await;
        let cancel = format!("/v1/payment_intents/{id}/cancel");
        api(&base, &sk, &cancel, &[]).await;
        let (_, body) = get_json(expanded, &sk).await;
        assert_eq!(body["status"], "canceled");
        assert_eq!(body["latest_charge"]["status"], "succeeded");
        assert_eq!(body["latest_charge"]["amount_refunded"], 14900);
        assert_eq!(body["latest_charge"]["refunded"], true);
    }

    #[tokio::test]
    async fn declined_then_another_card() {
        let base = start().await;
        let sk = key();
        let id = create(&base, &sk).await;
        let (status, body) = confirm(&base, &sk, &id, "pm_card_chargeDeclined").await;
        assert_eq!(status, 402);
        assert_eq!(body["error"]["type"], "card_error");
        assert_eq!(body["error"]["code"], "card_declined");
        assert_eq!(body["error"]["decline_code"], "generic_decline");
        assert_eq!(
            body["error"]["payment_intent"]["status"],
            "requires_payment_method"
        );
        let (_, intent) = get_json(format!("{base}/v1/payment_intents/{id}"), &sk).await;
        assert_eq!(intent["last_payment_error"]["code"], "card_declined");
        assert_eq!(
            intent["last_payment_error"]["message"],
            "Your card was declined."
        );
        let (status, body) = confirm(&base, &sk, &id, "pm_card_visa").await;
        assert_eq!(status, 200);
        assert_eq!(body["status"], "requires_capture");
        assert!(body["last_payment_error"].is_null());
        let (status, body) = confirm(&base, &sk, &id, "pm_card_unknown").await;
        assert_eq!(status, 400, "{body}");
    }

    #[tokio::test]
    async fn three_ds_failure_answers_json() {
        let base = start().await;
        let sk = key();
        let id = create(&base, &sk).await;
        let (_, body) = confirm(&base, &sk, &id, "pm_card_authenticationRequired").await;
        assert_eq!(body["status"], "requires_action");
        assert_eq!(body["next_action"]["type"], "redirect_to_url");
        let url = body["next_action"]["redirect_to_url"]["url"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(url, format!("{base}/_sim/3ds/{id}"));
        let page = reqwest::get(&url).await.unwrap().text().await.unwrap();
        assert!(page.contains("Complete") && page.contains("Fail"));
        assert!(page.contains("Order &lt;o-1&gt;"), "{page}");
        let failed: Value = reqwest::Client::new()
            .post(&url)
            .form(&[("outcome", "fail")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(failed["status"], "requires_payment_method");
        assert_eq!(
            failed["last_payment_error"]["code"],
            "payment_intent_authentication_failure"
        );
        let again = reqwest::Client::new()
            .post(&url)
            .form(&[("outcome", "complete")])
            .send()
            .await
            .unwrap();
        assert_eq!(again.status().as_u16(), 400);
    }

    #[tokio::test]
    async fn hosted_pay_page() {
        let base = start().await;
        let sk = key();
        let id = create(&base, &sk).await;
        let pay = format!("{base}/_sim/pay/{id}");
        let page = reqwest::get(format!("{pay}?return_url=http://shop.test/r"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains("149.00 DKK"), "{page}");
        assert!(page.contains("http://shop.test/r"));
        let client = no_redirects();
        let form = [("card", "3ds"), ("return_url", "http://shop.test/r")];
        let response = client.post(&pay).form(&form).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 303);
        assert_eq!(
            response.headers()["location"],
            format!("{base}/_sim/3ds/{id}").as_str()
        );
        let response = client
            .post(format!("{base}/_sim/3ds/{id}"))
            .form(&[("outcome", "complete")])
            .send()
            .await
            .unwrap();
        let location = response.headers()["location"].to_str().unwrap();
        assert!(location.starts_with(&format!("http://shop.test/r?payment_intent={id}&")));
        assert!(
            location.ends_with("redirect_status=succeeded"),
            "{location}"
        );

        let declined = create(&base, &sk).await;
        let form = [
            ("card", "declined"),
            ("return_url", "http://shop.test/r?x=1"),
        ];
        let response = client
            .post(format!("{base}/_sim/pay/{declined}"))
            .form(&form)
            .send()
            .await
            .unwrap();
        let location = response.headers()["location"].to_str().unwrap();
        assert!(
            location.starts_with("http://shop.test/r?x=1&"),
            "{location}"
        );
        assert!(location.ends_with("redirect_status=failed"), "{location}");
        let missing = reqwest::get(format!("{base}/_sim/pay/pi_nope"))
            .await
            .unwrap();
        assert_eq!(missing.status().as_u16(), 404);
    }

    #[tokio::test]
    async fn injected_failures_and_latency() {
        let base = start().await;
        let sk = key();
        let faults = json!({"fail_next_requests": 2, "latency_ms": 100});
        let response = reqwest::Client::new()
            .post(format!("{base}/_sim/faults"))
            .json(&faults)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.json::<Value>().await.unwrap()["fail_next_requests"],
            2
        );
        let started = std::time::Instant::now();
        for _ in 0..2 {
            let (status, body) = api(&base, &sk, "/v1/payment_intents", INTENT).await;
            assert_eq!((status, error_code(&body)), (500, "api_error"));
        }
        create(&base, &sk).await;
        assert!(started.elapsed() >= Duration::from_millis(300));
        let (_, ledger) = get_json(format!("{base}/_sim/ledger"), &sk).await;
        assert_eq!(ledger["intents"].as_array().unwrap().len(), 1);
        let bad = reqwest::Client::new()
            .post(format!("{base}/_sim/faults"))
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status().as_u16(), 400);
    }

    // ---- webhooks ----

    /// A webhook receiver that answers 500 to its first `fail_first` requests.
    #[derive(Debug, Clone, Default)]
    struct Receiver {
        got: Arc<Mutex<Vec<(String, HeaderMap, Bytes)>>>,
        fail_first: Arc<AtomicU32>,
    }

    impl Receiver {
        async fn start(fail_first: u32) -> (String, Self) {
            let receiver = Self::default();
            receiver.fail_first.store(fail_first, Ordering::SeqCst);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let app = Router::new()
                .route("/hook/{name}", post(Self::hook))
                .with_state(receiver.clone());
            tokio::spawn(async move { axum::serve(listener, app).await });
            (url, receiver)
        }

        async fn hook(
            State(r): State<Self>,
            Path(name): Path<String>,
            headers: HeaderMap,
            body: Bytes,
        ) -> StatusCode {
            r.got.lock().unwrap().push((name, headers, body));
            let failing = r
                .fail_first
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if failing {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::OK
            }
        }

        /// (endpoint name, event type, event id) of every request so far.
        fn seen(&self) -> Vec<(String, String, String)> {
            self.got
                .lock()
                .unwrap()
                .iter()
                .map(|(name, _, body)| {
                    let event: Value = serde_json::from_slice(body).unwrap();
                    let kind = event["type"].as_str().unwrap().to_owned();
                    (name.clone(), kind, event["id"].as_str().unwrap().to_owned())
                })
                .collect()
        }

        async fn wait_for(&self, count: usize) -> Vec<(String, String, String)> {
            for _ in 0..100 {
                let seen = self.seen();
                if seen.len() >= count {
                    return seen;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("expected {count} webhooks, got {:?}", self.seen());
        }
    }

    async fn endpoint(base: &str, sk: &str, url: &str, events: &[&str]) {
        let mut form = vec![("url", url), ("secret", "whsec_fixed")];
        form.extend(events.iter().map(|e| ("enabled_events[]", *e)));
        let (status, body) = api(base, sk, "/v1/webhook_endpoints", &form).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["object"], "webhook_endpoint");
        assert_eq!(body["secret"], "whsec_fixed");
        assert_eq!(body["status"], "enabled");
    }

    async fn set_faults(base: &str, faults: Value) {
        reqwest::Client::new()
            .post(format!("{base}/_sim/faults"))
            .json(&faults)
            .send()
            .await
            .unwrap();
    }

    /// Checks the signature the way a receiver would, independently of the simulator's code.
    fn check_signature(headers: &HeaderMap, body: &[u8]) {
        let header = headers["stripe-signature"].to_str().unwrap();
        let (t, v1) = header.split_once(",v1=").unwrap();
        let t = t.strip_prefix("t=").unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(b"whsec_fixed").unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        mac.verify_slice(&hex::decode(v1).unwrap()).unwrap();
        assert!((now() - t.parse::<i64>().unwrap()).abs() < 60);
    }

    #[tokio::test]
    async fn webhooks_are_signed_and_retried() {
        let base = start().await;
        let sk = key();
        let (url, receiver) = Receiver::start(1).await;
        endpoint(&base, &sk, &format!("{url}/hook/all"), &["*"]).await;
        let url = format!("{base}/v1/payment_intents");
        let (_, _, intent) = post_form(url, &sk, Some("create-1"), INTENT).await;
        let id = intent["id"].as_str().unwrap();
        let seen = receiver.wait_for(2).await;
        assert_eq!(seen[0], seen[1], "the retry sends the same event");
        let (_, headers, body) = receiver.got.lock().unwrap()[1].clone();
        check_signature(&headers, &body);
        let event: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(event["object"], "event");
        assert_eq!(event["type"], "payment_intent.created");
        assert_eq!(event["api_version"], API_VERSION);
        assert_eq!(event["livemode"], false);
        assert_eq!(event["request"]["idempotency_key"], "create-1");
        assert_eq!(event["data"]["object"]["id"], id);
        assert_eq!(event["data"]["object"]["metadata"]["order_id"], "o-1");

        let (_, events) = get_json(format!("{base}/_sim/events?payment_intent={id}"), &sk).await;
        let delivery = &events["events"][0]["deliveries"][0];
        assert_eq!(delivery["attempts"], 2);
        assert_eq!(delivery["statuses"], json!([500, 200]));
        assert_eq!(delivery["delivered"], true);

        // Resending delivers the same event again.
        let event_id = event["id"].as_str().unwrap();
        let response = reqwest::Client::new()
            .post(format!("{base}/_sim/webhooks/resend/{event_id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 202);
        let seen = receiver.wait_for(3).await;
        assert_eq!(seen[2].2, event_id);
    }

    #[tokio::test]
    async fn webhooks_by_event_type_and_duplicated() {
        let base = start().await;
        let sk = key();
        let (url, receiver) = Receiver::start(0).await;
        endpoint(&base, &sk, &format!("{url}/hook/all"), &["*"]).await;
        let canceled = ["payment_intent.canceled"];
        endpoint(&base, &sk, &format!("{url}/hook/canceled"), &canceled).await;
        let id = create(&base, &sk).await;
        receiver.wait_for(1).await;
        set_faults(&base, json!({"duplicate_webhooks": 1})).await;
        api(&base, &sk, &format!("/v1/payment_intents/{id}/cancel"), &[]).await;
        let seen = receiver.wait_for(5).await;
        let count = |name: &str, kind: &str| {
            seen.iter()
                .filter(|(n, k, _)| n == name && k == kind)
                .count()
        };
        assert_eq!(count("all", "payment_intent.created"), 1);
        assert_eq!(count("canceled", "payment_intent.created"), 0);
        assert_eq!(count("all", "payment_intent.canceled"), 2);
        assert_eq!(count("canceled", "payment_intent.canceled"), 2);
    }

    #[tokio::test]
    async fn webhooks_reordered_newest_first() {
        let base = start().await;
        let sk = key();
        let (url, receiver) = Receiver::start(0).await;
        endpoint(&base, &sk, &format!("{url}/hook/all"), &["*"]).await;
        set_faults(&base, json!({"reorder_webhooks": true})).await;
        let id = create(&base, &sk).await;
        confirm(&base, &sk, &id, "pm_card_visa").await;
        let kinds: Vec<String> = receiver
            .wait_for(2)
            .await
            .into_iter()
            .map(|(_, kind, _)| kind)
            .collect();
        assert_eq!(
            kinds,
            [
                "payment_intent.amount_capturable_updated",
                "payment_intent.created"
            ]
        );
    }

    #[tokio::test]
    async fn refund_raises_charge_refunded_with_intent_metadata() {
        let base = start().await;
        let sk = key();
        let (url, receiver) = Receiver::start(0).await;
        endpoint(
            &base,
            &sk,
            &format!("{url}/hook/refunds"),
            &["charge.refunded"],
        )
        .await;
        let id = create(&base, &sk).await;
        confirm(&base, &sk, &id, "pm_card_visa").await;
        api(
            &base,
            &sk,
            &format!("/v1/payment_intents/{id}/capture"),
            &[],
        )
        .await;
        api(
            &base,
            &sk,
            "/v1/refunds",
            &[("payment_intent", id.as_str())],
        )
        .await;
        receiver.wait_for(1).await;
        let (_, _, body) = receiver.got.lock().unwrap()[0].clone();
        let charge = &serde_json::from_slice::<Value>(&body).unwrap()["data"]["object"];
        assert_eq!(charge["object"], "charge");
        assert_eq!(charge["payment_intent"], json!(id));
        assert_eq!(charge["amount_refunded"], 14900);
        assert_eq!(charge["refunded"], true);
        assert_eq!(charge["metadata"]["order_id"], "o-1");
        let (_, ledger) = get_json(format!("{base}/_sim/ledger"), &sk).await;
        assert_eq!(ledger["intents"][0]["amount_refunded"], 14900);
    }

    #[test]
    fn retry_schedule_is_eight_attempts() {
        assert_eq!(RETRY_DELAYS.len() + 1, 8);
        assert!(RETRY_DELAYS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn masks_keys() {
        assert_eq!(mask("sk_live_abcdefghijkl1234"), "sk_live_************1234");
        assert_eq!(mask("short"), "*****");
    }
}
