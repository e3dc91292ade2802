//! A simulator of the number-porting clearing house for tests and the local run
//! (`tcom carrier-sim`): the gaining operator submits port requests, the losing operator's
//! answer comes back asynchronously, and on the port date the number moves. Denmark's requests
//! are OCH-shaped (current operator, the current SIM's ICC, the owner's CPR number, a date);
//! the UK's carry a PAC. Simulator-only controls register the numbers other operators hold,
//! move the clock to a port date and make the house as unreliable as any outside system.
//!
//! # Conventions
//!
//! - JSON bodies in camelCase; dates `YYYY-MM-DD`, instants `YYYY-MM-DDThh:mm:ssZ` (UTC).
//! - Every `/v1` request carries `Authorization: Bearer <token>` (any non-empty token).
//! - Errors: `{"code", "message"}`: 400 `invalid_json` / `idempotency_key_required`, 401
//!   `unauthorized`, 404 `not_found`, 409 `idempotency_key_reused`, 422 `validation_failed`,
//!   429 `rate_limited` (`Retry-After: 1`), 500 `internal_error`, 503 `service_unavailable`
//!   (`Retry-After: 30`).
//!
//! # Port requests
//!
//! - `POST /v1/port-requests` with `Idempotency-Key` and `{scheme: "och"|"pac", msisdn (E.164),
//!   donorOperator, icc?, ownerCpr?, pac?, requestedDate, reference, tenant}` → 201
//!   `{portingId, status: "submitted", answerDueBy, …}`. `och` needs `icc`; `pac` needs `pac`.
//!   The same key with the same body answers 200 with the same request, never a second one;
//!   with another body, 409.
//! - The losing operator answers at once (after the request is answered), within the 48 hours
//!   it has: `accepted` with `portDate` and `executesAt` (02:00 Danish time on the date), or
//!   `rejected` with `rejection: {code, message}`:
//!   - `number_not_with_operator`: the number is registered with another operator;
//!   - `wrong_icc`: the ICC is not that of the number's SIM (`och`);
//!   - `owner_mismatch`: a CPR number given that is not the number's owner's (`och`);
//!   - `pac_invalid` / `pac_expired`: not the number's PAC, or more than 30 days old (`pac`);
//!   - `port_date_unavailable`: the date is not a working day from the next one on (Danish
//!     calendar for `och`; weekdays for `pac`).
//!
//!   Numbers nobody registered are accepted with any operator, ICC and owner (so a local run
//!   ports anything).
//! - On `executesAt` by the simulator's clock an accepted port becomes `completed`
//!   (`completedAt`).
//! - `GET /v1/port-requests/{portingId}` → 200 the request as it stands.
//! - `POST /v1/webhook-subscriptions` `{url, secret, tenant?}` → 201: every answer and
//!   completion (of `tenant`'s ports only, when given) is POSTed as `{id, type: "port.answered"|"port.completed", portingId, reference, tenant,
//!   status, at}`, signed with `X-Carrier-Timestamp` and `X-Carrier-Signature` (see
//!   [`crate::signed_webhook`]), tried 5 times.
//!
//! # Simulator-only controls (`/_sim`: no authentication, never affected by faults)
//!
//! - `POST /_sim/subscribers` `{msisdn, operator, icc?, ownerCpr?, pac?, pacIssuedOn?}` → 201:
//!   the number as another operator holds it.
//! - `POST /_sim/clock` `{"advanceSeconds": n, "tenant"?}` → 200 `{now}`: the clock (of one
//!   tenant's ports, or of all) moves on and the ports due by then complete.
//! - `POST /_sim/faults` (`latency_ms`, `fail_next`, `timeout_next`, `outage`,
//!   `rate_limit_per_second`, `lose_response_next`, as the logistics simulator's), `GET`,
//!   `DELETE`.
//! - `GET /_sim/ledger` → `{ports: […], requests: {"<Idempotency-Key>": {seen, created}},
//!   webhookDeliveries: […]}`.
//!
//! State is in memory and lost on restart.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tcom_processors::domain::porting::{
    ANSWER_WINDOW, Pac, check_pac_validity, check_port_date, execution_instant,
};
use time::{Date, OffsetDateTime, Weekday};

use super::webhook::{PortNotification, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::sim_line::{self, Faults, FaultsPatch, RateWindow};

const MAX_KEY: usize = 255;
const WEBHOOK_ATTEMPTS: u32 = 5;

// ---- errors ----

#[derive(Debug)]
struct Problem {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Problem {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            message,
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = json!({ "code": self.code, "message": self.message });
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
        response
    }
}

type Answer = Result<(StatusCode, axum::Json<Value>), Problem>;

// ---- the house ----

/// A port request as submitted.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PortRequestBody {
    scheme: String,
    msisdn: String,
    donor_operator: String,
    #[serde(default)]
    icc: Option<String>,
    #[serde(default)]
    owner_cpr: Option<String>,
    #[serde(default)]
    pac: Option<String>,
    requested_date: String,
    reference: String,
    tenant: String,
}

/// A number as another operator holds it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Subscriber {
    msisdn: String,
    operator: String,
    #[serde(default)]
    icc: Option<String>,
    #[serde(default)]
    owner_cpr: Option<String>,
    #[serde(default)]
    pac: Option<String>,
    #[serde(default)]
    pac_issued_on: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Port {
    porting_id: String,
    scheme: String,
    msisdn: String,
    donor_operator: String,
    requested_date: String,
    reference: String,
    tenant: String,
    /// `submitted`, `accepted`, `rejected`, `completed`.
    status: String,
    submitted_at: String,
    answer_due_by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    port_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    executes_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rejection: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    completed_at: Option<String>,
    #[serde(skip)]
    executes_at_unix: Option<i64>,
    #[serde(skip)]
    request: Option<PortRequestBody>,
}

#[derive(Debug, Default)]
struct KeyLog {
    seen: u32,
    created: Option<String>,
}

#[derive(Debug, Default)]
struct SimState {
    ports: Vec<Port>,
    keys: BTreeMap<String, KeyLog>,
    subscribers: BTreeMap<String, Subscriber>,
    /// Seconds the simulator's clock is ahead of the machine's, for every tenant.
    clock_offset: i64,
    /// And further ahead for one tenant's ports (so tests of different shops do not move
    /// each other's clocks).
    tenant_offsets: BTreeMap<String, i64>,
    faults: Faults,
    window: RateWindow,
    subscriptions: Vec<WebhookSubscription>,
    deliveries: Vec<Value>,
    notifications: u64,
}

impl SimState {
    /// The simulator's clock for `tenant`'s ports.
    fn now(&self, tenant: &str) -> OffsetDateTime {
        let ahead = self.clock_offset + self.tenant_offsets.get(tenant).copied().unwrap_or(0);
        let unix = OffsetDateTime::now_utc().unix_timestamp() + ahead;
        OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    fn port_mut(&mut self, id: &str) -> Result<&mut Port, Problem> {
        self.ports
            .iter_mut()
            .find(|p| p.porting_id == id)
            .ok_or_else(|| Problem::new(StatusCode::NOT_FOUND, "not_found", "No such port"))
    }
}

/// Where notifications go: `url`, signed with `secret`, of one tenant's ports or of all.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookSubscription {
    url: String,
    secret: String,
    #[serde(default)]
    tenant: Option<String>,
}

#[derive(Debug, Clone, Default)]
struct Sim(Arc<Mutex<SimState>>);

impl Sim {
    fn lock(&self) -> MutexGuard<'_, SimState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn utc(at: OffsetDateTime) -> String {
    let seconds = u64::try_from(at.unix_timestamp()).unwrap_or(0);
    sim_line::utc(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
}

fn parse_date(text: &str) -> Option<Date> {
    Date::parse(
        text,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()
}

fn validate(body: &PortRequestBody) -> Result<Date, Problem> {
    let date = parse_date(&body.requested_date)
        .ok_or_else(|| Problem::invalid("requestedDate: must be YYYY-MM-DD"))?;
    let e164 = body.msisdn.strip_prefix('+').unwrap_or_default();
    if !(8..=15).contains(&e164.len()) || !e164.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Problem::invalid("msisdn: must be E.164"));
    }
    if body.donor_operator.trim().is_empty() || body.reference.is_empty() || body.tenant.is_empty()
    {
        return Err(Problem::invalid(
            "donorOperator, reference and tenant are required",
        ));
    }
    match body.scheme.as_str() {
        "och" if body.icc.is_none() => Err(Problem::invalid("icc: required with och")),
        "pac" if body.pac.is_none() => Err(Problem::invalid("pac: required with pac")),
        "och" | "pac" => Ok(date),
        _ => Err(Problem::invalid("scheme: must be och or pac")),
    }
}

/// The losing operator's answer: `Ok(())` to accept, else the rejection's code and message.
fn answer(
    body: &PortRequestBody,
    date: Date,
    subscriber: Option<&Subscriber>,
    now: OffsetDateTime,
) -> Result<(), (&'static str, String)> {
    if let Some(held) = subscriber {
        if !held
            .operator
            .trim()
            .eq_ignore_ascii_case(body.donor_operator.trim())
        {
            return Err((
                "number_not_with_operator",
                format!("{} is not with {}", body.msisdn, body.donor_operator),
            ));
        }
        if body.scheme == "och" {
            if held.icc.is_some() && held.icc != body.icc {
                return Err((
                    "wrong_icc",
                    "The ICC is not that of the number's SIM".into(),
                ));
            }
            if let (Some(owner), Some(given)) = (&held.owner_cpr, &body.owner_cpr)
                && owner != given
            {
                return Err(("owner_mismatch", "The owner does not match".into()));
            }
        } else if let Some(pac) = &held.pac {
            let given = body.pac.as_deref().and_then(|p| Pac::parse(p).ok());
            if given.as_ref().map(Pac::as_str) != Some(pac.as_str()) {
                return Err(("pac_invalid", "The PAC is not this number's".into()));
            }
            let issued = held.pac_issued_on.as_deref().and_then(parse_date);
            if let Some(issued) = issued
                && let Err(e) = check_pac_validity(issued, now.date())
            {
                return Err(("pac_expired", e.to_string()));
            }
        }
    }
    let date_ok = if body.scheme == "och" {
        check_port_date(date, now).is_ok()
    } else {
        date > now.date() && !matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday)
    };
    if !date_ok {
        return Err((
            "port_date_unavailable",
            format!("No port can be made on {date}"),
        ));
    }
    Ok(())
}

fn submit_in(state: &mut SimState, key: &str, raw: &[u8]) -> Answer {
    let body: PortRequestBody = serde_json::from_slice(raw).map_err(|e| {
        if serde_json::from_slice::<Value>(raw).is_err() {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("The body is not JSON: {e}"),
            )
        } else {
            Problem::invalid(e.to_string())
        }
    })?;
    validate(&body)?;
    let log = state.keys.entry(key.to_owned()).or_default();
    log.seen += 1;
    if let Some(created) = log.created.clone() {
        let port = state.port_mut(&created)?;
        if port.request.as_ref() != Some(&body) {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "idempotency_key_reused",
                "The Idempotency-Key was used for another request",
            ));
        }
        return Ok((StatusCode::OK, axum::Json(json!(port))));
    }
    let now = state.now(&body.tenant);
    let id = format!("OCH{:07}", state.ports.len() + 1);
    let port = Port {
        porting_id: id.clone(),
        scheme: body.scheme.clone(),
        msisdn: body.msisdn.clone(),
        donor_operator: body.donor_operator.clone(),
        requested_date: body.requested_date.clone(),
        reference: body.reference.clone(),
        tenant: body.tenant.clone(),
        status: "submitted".to_owned(),
        submitted_at: utc(now),
        answer_due_by: utc(now + ANSWER_WINDOW),
        port_date: None,
        executes_at: None,
        rejection: None,
        completed_at: None,
        executes_at_unix: None,
        request: Some(body),
    };
    let shown = json!(port);
    state.ports.push(port);
    if let Some(log) = state.keys.get_mut(key) {
        log.created = Some(id);
    }
    Ok((StatusCode::CREATED, axum::Json(shown)))
}

/// The losing operator answers port `id`; the notifications to send.
fn answer_port(state: &mut SimState, id: &str) -> Vec<(String, String, Vec<u8>)> {
    let Some(index) = state.ports.iter().position(|p| p.porting_id == id) else {
        return Vec::new();
    };
    let now = state.now(&state.ports[index].tenant);
    let Some(body) = state.ports[index].request.clone() else {
        return Vec::new();
    };
    if state.ports[index].status != "submitted" {
        return Vec::new();
    }
    let date = parse_date(&body.requested_date).unwrap_or(now.date());
    let verdict = answer(&body, date, state.subscribers.get(&body.msisdn), now);
    let port = &mut state.ports[index];
    match verdict {
        Ok(()) => {
            let executes = execution_instant(date);
            port.status = "accepted".to_owned();
            port.port_date = Some(body.requested_date.clone());
            port.executes_at = Some(utc(executes));
            port.executes_at_unix = Some(executes.unix_timestamp());
        }
        Err((code, message)) => {
            port.status = "rejected".to_owned();
            port.rejection = Some(json!({ "code": code, "message": message }));
        }
    }
    notifications(state, index, "port.answered")
}

/// Completes the accepted ports due by the simulator's clock; the notifications to send.
fn execute_due(state: &mut SimState) -> Vec<(String, String, Vec<u8>)> {
    let due: Vec<usize> = state
        .ports
        .iter()
        .enumerate()
        .filter(|(_, p)| {
            let now = state.now(&p.tenant).unix_timestamp();
            p.status == "accepted" && p.executes_at_unix.is_some_and(|t| t <= now)
        })
        .map(|(n, _)| n)
        .collect();
    let mut outgoing = Vec::new();
    for index in due {
        let now = state.now(&state.ports[index].tenant);
        let port = &mut state.ports[index];
        port.status = "completed".to_owned();
        port.completed_at = Some(utc(now));
        outgoing.extend(notifications(state, index, "port.completed"));
    }
    outgoing
}

fn notifications(state: &mut SimState, index: usize, kind: &str) -> Vec<(String, String, Vec<u8>)> {
    let tenant = state.ports[index].tenant.clone();
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
    let port = &state.ports[index];
    let notification = PortNotification {
        id: format!("cwh_{:07}", state.notifications),
        kind: kind.to_owned(),
        porting_id: port.porting_id.clone(),
        reference: port.reference.clone(),
        tenant: port.tenant.clone(),
        status: port.status.clone(),
        at: utc(state.now(&port.tenant)),
    };
    let body = serde_json::to_vec(&notification).expect("a notification serialises");
    subscribed
        .into_iter()
        .map(|s| (s.url, s.secret, body.clone()))
        .collect()
}

fn send_all(sim: &Sim, outgoing: Vec<(String, String, Vec<u8>)>) {
    for (url, secret, body) in outgoing {
        let sim = sim.clone();
        tokio::spawn(async move {
            let (attempts, status) = sim_line::deliver_webhook(
                &url,
                &secret,
                (TIMESTAMP_HEADER, SIGNATURE_HEADER),
                &body,
                WEBHOOK_ATTEMPTS,
            )
            .await;
            let notification: Value = serde_json::from_slice(&body).unwrap_or_default();
            sim.lock().deliveries.push(json!({
                "notification": notification["id"],
                "type": notification["type"],
                "url": url,
                "attempts": attempts,
                "status": status,
            }));
        });
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

async fn submit(State(sim): State<Sim>, headers: HeaderMap, body: Bytes) -> Answer {
    let key = idempotency_key(&headers)?;
    let answer = submit_in(&mut sim.lock(), &key, &body)?;
    if answer.0 == StatusCode::CREATED {
        // The losing operator answers after the request was taken, as the real one does.
        let id = answer.1["portingId"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let sim = sim.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let outgoing = answer_port(&mut sim.lock(), &id);
            send_all(&sim, outgoing);
        });
    }
    Ok(answer)
}

async fn get_port(State(sim): State<Sim>, Path(id): Path<String>) -> Answer {
    let state = &mut *sim.lock();
    Ok((StatusCode::OK, axum::Json(json!(state.port_mut(&id)?))))
}

async fn subscribe(State(sim): State<Sim>, body: Bytes) -> Answer {
    let body: WebhookSubscription =
        serde_json::from_slice(&body).map_err(|e| Problem::invalid(e.to_string()))?;
    if !(body.url.starts_with("http://") || body.url.starts_with("https://"))
        || body.secret.is_empty()
    {
        return Err(Problem::invalid("url must be http(s) and secret non-empty"));
    }
    let mut state = sim.lock();
    let shown = json!({ "url": body.url, "tenant": body.tenant });
    // Subscribing a URL again replaces its subscription (a new secret), never doubles it.
    state
        .subscriptions
        .retain(|s| !(s.url == body.url && s.tenant == body.tenant));
    state.subscriptions.push(body);
    let mut shown = shown;
    shown["id"] = json!(format!("cws_{:04}", state.subscriptions.len()));
    Ok((StatusCode::CREATED, axum::Json(shown)))
}

async fn health() -> Response {
    axum::Json(json!({ "status": "UP" })).into_response()
}

async fn unknown() -> Response {
    Problem::new(StatusCode::NOT_FOUND, "not_found", "Not found").into_response()
}

async fn authenticate(request: Request, next: Next) -> Response {
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, token)| {
            scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()
        });
    if !bearer {
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

async fn outage_gate(State(sim): State<Sim>, request: Request, next: Next) -> Response {
    if sim.lock().faults.outage {
        return Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "The clearing house is temporarily unavailable",
        )
        .into_response();
    }
    next.run(request).await
}

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

async fn register(State(sim): State<Sim>, body: Bytes) -> Answer {
    let subscriber: Subscriber =
        serde_json::from_slice(&body).map_err(|e| Problem::invalid(e.to_string()))?;
    if let Some(pac) = &subscriber.pac
        && Pac::parse(pac).is_err()
    {
        return Err(Problem::invalid("pac: 3 letters and 6 digits"));
    }
    let shown = json!({ "msisdn": subscriber.msisdn, "operator": subscriber.operator });
    let mut subscriber = subscriber;
    subscriber.pac = subscriber
        .pac
        .as_deref()
        .and_then(|p| Pac::parse(p).ok())
        .map(|p| p.as_str().to_owned());
    sim.lock()
        .subscribers
        .insert(subscriber.msisdn.clone(), subscriber);
    Ok((StatusCode::CREATED, axum::Json(shown)))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClockBody {
    advance_seconds: i64,
    /// Only this tenant's clock; `None`: every tenant's.
    #[serde(default)]
    tenant: Option<String>,
}

async fn clock(State(sim): State<Sim>, body: Bytes) -> Answer {
    let body: ClockBody =
        serde_json::from_slice(&body).map_err(|e| Problem::invalid(e.to_string()))?;
    let (now, outgoing) = {
        let state = &mut *sim.lock();
        let ahead = body.advance_seconds.max(0);
        match &body.tenant {
            Some(tenant) => *state.tenant_offsets.entry(tenant.clone()).or_default() += ahead,
            None => state.clock_offset += ahead,
        }
        let now = state.now(body.tenant.as_deref().unwrap_or_default());
        (utc(now), execute_due(state))
    };
    send_all(&sim, outgoing);
    Ok((StatusCode::OK, axum::Json(json!({ "now": now }))))
}

async fn get_faults(State(sim): State<Sim>) -> Answer {
    Ok((StatusCode::OK, axum::Json(json!(sim.lock().faults))))
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
    Ok((StatusCode::OK, axum::Json(json!(faults))))
}

async fn clear_faults(State(sim): State<Sim>) -> Answer {
    let state = &mut *sim.lock();
    state.faults = Faults::default();
    state.window = RateWindow::default();
    Ok((StatusCode::OK, axum::Json(json!(state.faults))))
}

async fn ledger(State(sim): State<Sim>) -> Answer {
    let state = sim.lock();
    let requests: serde_json::Map<String, Value> = state
        .keys
        .iter()
        .map(|(key, log)| {
            (
                key.clone(),
                json!({ "seen": log.seen, "created": log.created }),
            )
        })
        .collect();
    Ok((
        StatusCode::OK,
        axum::Json(json!({
            "ports": state.ports,
            "requests": requests,
            "webhookDeliveries": state.deliveries,
        })),
    ))
}

fn router(sim: Sim) -> Router {
    let api = Router::new()
        .route("/v1/port-requests", post(submit))
        .route("/v1/port-requests/{id}", get(get_port))
        .route("/v1/webhook-subscriptions", post(subscribe))
        .route_layer(middleware::from_fn(authenticate))
        .route_layer(middleware::from_fn_with_state(sim.clone(), api_faults));
    let served = api
        .route("/healthz", get(health))
        .fallback(unknown)
        .layer(middleware::from_fn_with_state(sim.clone(), outage_gate));
    let controls = Router::new()
        .route("/_sim/subscribers", post(register))
        .route("/_sim/clock", post(clock))
        .route(
            "/_sim/faults",
            get(get_faults).post(set_faults).delete(clear_faults),
        )
        .route("/_sim/ledger", get(ledger));
    served.merge(controls).with_state(sim)
}

/// Binds the simulator and serves it until `shutdown`; tells `on_bound` the bound address
/// first. Ports due by the real clock complete every second as well.
///
/// # Errors
/// The address cannot be bound.
pub async fn serve(
    listen: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_bound: impl FnOnce(SocketAddr),
) -> io::Result<()> {
    let sim = Sim::default();
    let ticking = sim.clone();
    let ticker = tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        loop {
            every.tick().await;
            let outgoing = execute_due(&mut ticking.lock());
            send_all(&ticking, outgoing);
        }
    });
    let served = sim_line::serve("Clearing house", listen, router(sim), shutdown, on_bound).await;
    ticker.abort();
    served
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(scheme: &str, date: &str) -> PortRequestBody {
        PortRequestBody {
            scheme: scheme.to_owned(),
            msisdn: "+4520123456".to_owned(),
            donor_operator: "Telia".to_owned(),
            icc: Some("8945020000000000004".to_owned()),
            owner_cpr: None,
            pac: Some("ABC123456".to_owned()),
            requested_date: date.to_owned(),
            reference: "t:o:l".to_owned(),
            tenant: "t".to_owned(),
        }
    }

    fn monday_noon() -> OffsetDateTime {
        // Monday 7 December 2026, 12:00 UTC.
        OffsetDateTime::from_unix_timestamp(1_796_644_800).expect("a valid instant")
    }

    #[test]
    fn the_losing_operator_checks_the_number_the_icc_the_owner_and_the_pac() {
        let now = monday_noon();
        assert_eq!(now.weekday(), Weekday::Monday);
        let date = parse_date("2026-12-08").expect("a date");
        let held = Subscriber {
            msisdn: "+4520123456".to_owned(),
            operator: "telia".to_owned(),
            icc: Some("8945020000000000004".to_owned()),
            owner_cpr: Some("0101901234".to_owned()),
            pac: Some("ABC123456".to_owned()),
            pac_issued_on: Some("2026-12-01".to_owned()),
        };
        assert_eq!(
            answer(&request("och", "2026-12-08"), date, Some(&held), now),
            Ok(())
        );
        assert_eq!(
            answer(&request("och", "2026-12-08"), date, None, now),
            Ok(())
        );
        let mut wrong = request("och", "2026-12-08");
        wrong.icc = Some("8945020000000000012".to_owned());
        assert_eq!(
            answer(&wrong, date, Some(&held), now).unwrap_err().0,
            "wrong_icc"
        );
        let mut other = request("och", "2026-12-08");
        other.donor_operator = "3".to_owned();
        assert_eq!(
            answer(&other, date, Some(&held), now).unwrap_err().0,
            "number_not_with_operator"
        );
        let mut owner = request("och", "2026-12-08");
        owner.owner_cpr = Some("0202902345".to_owned());
        assert_eq!(
            answer(&owner, date, Some(&held), now).unwrap_err().0,
            "owner_mismatch"
        );
        let mut pac = request("pac", "2026-12-08");
        pac.pac = Some("XYZ123456".to_owned());
        assert_eq!(
            answer(&pac, date, Some(&held), now).unwrap_err().0,
            "pac_invalid"
        );
        let old = Subscriber {
            pac_issued_on: Some("2026-11-01".to_owned()),
            ..held.clone()
        };
        assert_eq!(
            answer(&request("pac", "2026-12-08"), date, Some(&old), now)
                .unwrap_err()
                .0,
            "pac_expired"
        );
        // Today is no port date.
        let today = parse_date("2026-12-07").expect("a date");
        assert_eq!(
            answer(&request("och", "2026-12-07"), today, None, now)
                .unwrap_err()
                .0,
            "port_date_unavailable"
        );
    }

    #[test]
    fn a_request_is_validated_before_it_is_taken() {
        assert!(validate(&request("och", "2026-12-08")).is_ok());
        assert!(validate(&request("och", "8 Dec")).is_err());
        assert!(validate(&request("mnp", "2026-12-08")).is_err());
        let mut no_icc = request("och", "2026-12-08");
        no_icc.icc = None;
        assert!(validate(&no_icc).is_err());
        let mut bad_number = request("pac", "2026-12-08");
        bad_number.msisdn = "4520123456".to_owned();
        assert!(validate(&bad_number).is_err());
    }

    #[test]
    fn the_same_key_never_makes_a_second_port() {
        let mut state = SimState::default();
        let body = serde_json::to_vec(&json!({
            "scheme": "och", "msisdn": "+4520123456", "donorOperator": "Telia",
            "icc": "8945020000000000004", "requestedDate": "2026-12-08",
            "reference": "t:o:l", "tenant": "t"
        }))
        .expect("JSON");
        let first = submit_in(&mut state, "k1", &body).expect("taken");
        assert_eq!(first.0, StatusCode::CREATED);
        let again = submit_in(&mut state, "k1", &body).expect("replayed");
        assert_eq!(again.0, StatusCode::OK);
        assert_eq!(again.1["portingId"], first.1["portingId"]);
        assert_eq!(state.ports.len(), 1);
        let other = serde_json::to_vec(&json!({
            "scheme": "och", "msisdn": "+4520123457", "donorOperator": "Telia",
            "icc": "8945020000000000004", "requestedDate": "2026-12-08",
            "reference": "t:o:l", "tenant": "t"
        }))
        .expect("JSON");
        let reused = submit_in(&mut state, "k1", &other).unwrap_err();
        assert_eq!(reused.code, "idempotency_key_reused");
    }
}
