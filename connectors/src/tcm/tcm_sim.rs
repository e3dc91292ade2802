//! A simulator of the legacy TCM system for tests and the local run (`tcom tcm-sim`): the
//! REST API the platform calls to create customers and subscriptions, with TCM's legacy
//! flavour, and controls to make it as slow, unwell and surprising as the real one.
//!
//! # Conventions
//!
//! - JSON bodies in camelCase; unknown members are refused. Dates are `YYYY-MM-DD`,
//!   timestamps `YYYY-MM-DDThh:mm:ssZ` (UTC); absent optional members are answered as `null`.
//! - Errors: `{"errorCode": "TCM-xxxx", "errorMessage": "…"}`:
//!
//! | status | errorCode | when |
//! | --- | --- | --- |
//! | 400 | `TCM-4000` | a create without `X-Request-Id` (or one longer than 128 characters) |
//! | 400 | `TCM-4001` | a malformed or invalid body or query |
//! | 404 | `TCM-4040` | an unknown customer, subscription or path |
//! | 405 | `TCM-4050` | a method the path does not take |
//! | 409 | `TCM-4091` | "MSISDN already active": another request id, a number with a live subscription |
//! | 409 | `TCM-4092` | a request id already used for a different create |
//! | 409 | `TCM-4093` | terminating a subscription that is already terminated |
//! | 422 | `TCM-4220` | the customer is unknown in the subscription's tenant |
//! | 429 | `TCM-4290` | the rate limit (`Retry-After: 1`) |
//! | 500 | `TCM-5000` | an injected internal error |
//!
//! - `X-Request-Id` is the idempotency key of every create. The same id again, with the same
//!   body, answers 200 with what the first request created (never a second one); with another
//!   body, or on the other create endpoint, 409 `TCM-4092`. An id whose request was refused
//!   (422, 409 `TCM-4091`) has created nothing and can be used again.
//! - Ids are sequential: customers `C0000001`, `C0000002`, …; subscriptions `S0000001`, ….
//!
//! # Customers
//!
//! - `POST /tcm/v1/customers` `{externalRef, tenant, name, birthDate?, email?,
//!   address?: {street, postalCode, city, country (ISO 3166 alpha-2)}}` → 201 the customer:
//!   `{customerId, externalRef, tenant, name, birthDate, email, address, createdAt}`.
//! - `GET /tcm/v1/customers/{customerId}` → 200 the customer.
//!
//! # Subscriptions
//!
//! - `POST /tcm/v1/subscriptions` `{customerId, externalRef (the platform's order item),
//!   tenant, planCode, msisdn (E.164), iccid?, simType: "PSIM"|"ESIM", bindingEndDate?,
//!   sharedDataSims: [{iccid}]}` → 201 the subscription, activated at once:
//!   `{subscriptionId, customerId, externalRef, tenant, planCode, msisdn, iccid, simType,
//!   bindingEndDate, sharedDataSims, status: "ACTIVE", activatedAt, terminatedAt: null,
//!   lastModifiedAt}`. An ICCID is 18 to 22 digits starting `89`.
//! - A number is *live* while a subscription holding it is `ACTIVE` or `SUSPENDED` (a
//!   suspended subscription keeps its number); a create for a live number is 409 `TCM-4091`.
//! - `GET /tcm/v1/subscriptions/{subscriptionId}` → 200 the subscription.
//! - `GET /tcm/v1/subscriptions?tenant=&msisdn=&page=&pageSize=` → 200 `{items, page,
//!   pageSize, totalItems, totalPages}`: empty or absent filters match everything; `page`
//!   counts from 1 (default 1), `pageSize` 1 to 100 (default 20). The order is stable, by
//!   subscription id, so a reconciliation job can walk the pages. (A `+` in a query must be
//!   sent as `%2B`, or it reads as a space.)
//! - `POST /tcm/v1/subscriptions/{subscriptionId}/terminate` (any body, ignored) → 200 the
//!   subscription, `TERMINATED` with `terminatedAt`; its number is free again.
//! - `GET /healthz` → 200 `{"status": "UP"}`.
//!
//! # Simulator-only controls (`/_sim`, TCM has none of them)
//!
//! - `POST /_sim/faults` `{"latency_ms", "fail_next", "timeout_next", "outage",
//!   "rate_limit_per_second", "lose_response_next"}` (each optional: the members given
//!   replace the current ones) → 200 the faults now in force; `GET` shows them, `DELETE`
//!   clears them all.
//!   - `outage`: the load balancer answers every request but `/_sim` (`/healthz` too) with a
//!     503 HTML maintenance page and `Retry-After: 30`.
//!   - The other faults apply to the `/tcm/v1` API only, in this order: beyond
//!     `rate_limit_per_second` calls in a second, 429 `TCM-4290` (0: no limit); then
//!     `latency_ms` before every call; then each of the next `timeout_next` calls hangs 30 s
//!     and the connection is closed without an answer; then each of the next `fail_next`
//!     calls answers 500 `TCM-5000`. Such calls never reach TCM: nothing is applied.
//!   - `lose_response_next`: the next n successful creates (201, or a 200 replay) are applied,
//!     then the connection is closed without an answer: the case the request id exists for.
//! - `GET /_sim/ledger` → `{"customers": […], "subscriptions": […], "requests": {"<X-Request-Id>":
//!   {"seen": n, "created": "S0000001"|null}}}`: every record, and per request id how many
//!   create requests TCM saw with it (past the faults) and what it created.
//! - `POST /_sim/subscriptions/{subscriptionId}/drift` `{"status": "ACTIVE"|"SUSPENDED"|
//!   "TERMINATED"}` → 200 the subscription, changed behind the platform's back (as a TCM
//!   agent would), for reconciliation tests; 409 `TCM-4091` to revive one whose number is live
//!   elsewhere.
//!
//! State is in memory, shared by all requests, and lost on restart.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::IncomingStream;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// How long a `timeout_next` call hangs before the connection is closed.
const HANG: Duration = Duration::from_secs(30);

const MAX_REQUEST_ID: usize = 128;
const DEFAULT_PAGE_SIZE: usize = 20;
const MAX_PAGE_SIZE: usize = 100;

// ---- errors ----

/// A TCM error answer, `{"errorCode", "errorMessage"}`.
#[derive(Debug)]
struct TcmError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl TcmError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "TCM-4001", message)
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "TCM-4040", message)
    }

    fn msisdn_active() -> Self {
        Self::new(StatusCode::CONFLICT, "TCM-4091", "MSISDN already active")
    }

    fn request_id_reused() -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "TCM-4092",
            "X-Request-Id already used for a different request",
        )
    }
}

impl IntoResponse for TcmError {
    fn into_response(self) -> Response {
        let body = json!({ "errorCode": self.code, "errorMessage": self.message });
        (self.status, axum::Json(body)).into_response()
    }
}

type Answer = Result<(StatusCode, axum::Json<Value>), TcmError>;

fn ok(value: Value) -> Answer {
    Ok((StatusCode::OK, axum::Json(value)))
}

/// A JSON body: TCM's parser is strict (unknown members are refused), and so is this one.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, TcmError> {
    serde_json::from_slice(body).map_err(|e| TcmError::invalid(format!("Invalid body: {e}")))
}

// ---- validation ----

fn require(field: &str, value: &str) -> Result<(), TcmError> {
    if value.trim().is_empty() {
        return Err(TcmError::invalid(format!("{field} is required")));
    }
    Ok(())
}

fn check(ok: bool, field: &str, expected: &str) -> Result<(), TcmError> {
    if ok {
        Ok(())
    } else {
        Err(TcmError::invalid(format!("{field} must be {expected}")))
    }
}

fn all_digits(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_digit())
}

/// `YYYY-MM-DD`, a day that exists.
fn valid_date(text: &str) -> bool {
    let mut parts = text.split('-');
    let (Some(y), Some(m), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 || !all_digits(&format!("{y}{m}{d}")) {
        return false;
    }
    let (Ok(year), Ok(month), Ok(day)) = (y.parse::<u32>(), m.parse::<u32>(), d.parse::<u32>())
    else {
        return false;
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

/// E.164: `+`, then 7 to 15 digits, the country code not starting with 0.
fn valid_msisdn(text: &str) -> bool {
    text.strip_prefix('+').is_some_and(|digits| {
        (7..=15).contains(&digits.len()) && all_digits(digits) && !digits.starts_with('0')
    })
}

/// 18 to 22 digits, starting with the telecom industry identifier 89.
fn valid_iccid(text: &str) -> bool {
    (18..=22).contains(&text.len()) && all_digits(text) && text.starts_with("89")
}

fn valid_email(text: &str) -> bool {
    text.split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
}

// ---- TCM's records ----

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Address {
    street: String,
    postal_code: String,
    city: String,
    country: String,
}

/// The body of a customer create.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewCustomer {
    external_ref: String,
    tenant: String,
    name: String,
    birth_date: Option<String>,
    email: Option<String>,
    address: Option<Address>,
}

impl NewCustomer {
    fn validate(&self) -> Result<(), TcmError> {
        require("externalRef", &self.external_ref)?;
        require("tenant", &self.tenant)?;
        require("name", &self.name)?;
        if let Some(date) = &self.birth_date {
            check(valid_date(date), "birthDate", "a date, YYYY-MM-DD")?;
        }
        if let Some(email) = &self.email {
            check(valid_email(email), "email", "an e-mail address")?;
        }
        if let Some(address) = &self.address {
            require("address.street", &address.street)?;
            require("address.postalCode", &address.postal_code)?;
            require("address.city", &address.city)?;
            let country = &address.country;
            let alpha2 = country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase());
            check(alpha2, "address.country", "an ISO 3166 alpha-2 code")?;
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Customer {
    id: String,
    /// As created; a replay must match it.
    request: NewCustomer,
    created_at: String,
}

impl Customer {
    fn json(&self) -> Value {
        let r = &self.request;
        json!({
            "customerId": self.id,
            "externalRef": r.external_ref,
            "tenant": r.tenant,
            "name": r.name,
            "birthDate": r.birth_date,
            "email": r.email,
            "address": r.address,
            "createdAt": self.created_at,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum SimType {
    #[serde(rename = "PSIM")]
    Physical,
    #[serde(rename = "ESIM")]
    Embedded,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SharedSim {
    iccid: String,
}

/// The body of a subscription create.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewSubscription {
    customer_id: String,
    external_ref: String,
    tenant: String,
    plan_code: String,
    msisdn: String,
    iccid: Option<String>,
    sim_type: SimType,
    binding_end_date: Option<String>,
    shared_data_sims: Vec<SharedSim>,
}

impl NewSubscription {
    fn validate(&self) -> Result<(), TcmError> {
        require("customerId", &self.customer_id)?;
        require("externalRef", &self.external_ref)?;
        require("tenant", &self.tenant)?;
        require("planCode", &self.plan_code)?;
        check(valid_msisdn(&self.msisdn), "msisdn", "an E.164 number")?;
        if let Some(iccid) = &self.iccid {
            check(valid_iccid(iccid), "iccid", "an ICCID")?;
        }
        if let Some(date) = &self.binding_end_date {
            check(valid_date(date), "bindingEndDate", "a date, YYYY-MM-DD")?;
        }
        for sim in &self.shared_data_sims {
            check(valid_iccid(&sim.iccid), "sharedDataSims.iccid", "an ICCID")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum Status {
    Active,
    Suspended,
    Terminated,
}

#[derive(Debug)]
struct Subscription {
    id: String,
    /// As created; a replay must match it. Drift changes the status, never this.
    request: NewSubscription,
    status: Status,
    activated_at: String,
    terminated_at: Option<String>,
    last_modified_at: String,
}

impl Subscription {
    /// Whether the subscription holds its number: a suspended one keeps it.
    fn is_live(&self) -> bool {
        self.status != Status::Terminated
    }

    fn set_status(&mut self, status: Status, now: &str) {
        if status == Status::Terminated {
            if self.status != Status::Terminated {
                self.terminated_at = Some(now.to_owned());
            }
        } else {
            self.terminated_at = None;
        }
        self.status = status;
        now.clone_into(&mut self.last_modified_at);
    }

    fn json(&self) -> Value {
        let r = &self.request;
        json!({
            "subscriptionId": self.id,
            "customerId": r.customer_id,
            "externalRef": r.external_ref,
            "tenant": r.tenant,
            "planCode": r.plan_code,
            "msisdn": r.msisdn,
            "iccid": r.iccid,
            "simType": r.sim_type,
            "bindingEndDate": r.binding_end_date,
            "sharedDataSims": r.shared_data_sims,
            "status": self.status,
            "activatedAt": self.activated_at,
            "terminatedAt": self.terminated_at,
            "lastModifiedAt": self.last_modified_at,
        })
    }
}

/// What a request id created.
#[derive(Debug, Clone, Copy)]
enum Created {
    /// An index into `Books::customers`.
    Customer(usize),
    /// An index into `Books::subscriptions`.
    Subscription(usize),
}

#[derive(Debug, Default)]
struct RequestLog {
    /// Create requests TCM saw with this id.
    seen: u32,
    created: Option<Created>,
}

/// `C0000001` for the first record, with `prefix` `C`.
fn record_id(prefix: char, index: usize) -> String {
    format!("{prefix}{:07}", index + 1)
}

/// The index `record_id` made `id` from.
fn record_index(prefix: char, id: &str) -> Option<usize> {
    let digits = id.strip_prefix(prefix)?;
    if digits.len() != 7 || !all_digits(digits) {
        return None;
    }
    digits.parse::<usize>().ok()?.checked_sub(1)
}

/// TCM's data. Records are never deleted, so an id's index is its position.
#[derive(Debug, Default)]
struct Books {
    customers: Vec<Customer>,
    subscriptions: Vec<Subscription>,
    requests: BTreeMap<String, RequestLog>,
}

impl Books {
    /// Counts a create request; returns what its id created before, if anything.
    fn see(&mut self, request_id: &str) -> Option<Created> {
        let log = self.requests.entry(request_id.to_owned()).or_default();
        log.seen += 1;
        log.created
    }

    fn customer(&self, id: &str) -> Option<&Customer> {
        self.customers.get(record_index('C', id)?)
    }

    fn subscription(&self, id: &str) -> Result<&Subscription, TcmError> {
        record_index('S', id)
            .and_then(|i| self.subscriptions.get(i))
            .ok_or_else(|| TcmError::not_found(format!("Subscription {id} not found")))
    }

    fn subscription_mut(&mut self, id: &str) -> Result<&mut Subscription, TcmError> {
        record_index('S', id)
            .and_then(|i| self.subscriptions.get_mut(i))
            .ok_or_else(|| TcmError::not_found(format!("Subscription {id} not found")))
    }

    fn number_is_live(&self, msisdn: &str) -> bool {
        self.subscriptions
            .iter()
            .any(|s| s.is_live() && s.request.msisdn == msisdn)
    }

    fn add_customer(&mut self, request_id: &str, request: NewCustomer, now: &str) -> Answer {
        let index = self.customers.len();
        let customer = Customer {
            id: record_id('C', index),
            request,
            created_at: now.to_owned(),
        };
        let body = customer.json();
        self.customers.push(customer);
        self.record(request_id, Created::Customer(index));
        Ok((StatusCode::CREATED, axum::Json(body)))
    }

    fn add_subscription(
        &mut self,
        request_id: &str,
        request: NewSubscription,
        now: &str,
    ) -> Answer {
        let known = self
            .customer(&request.customer_id)
            .is_some_and(|c| c.request.tenant == request.tenant);
        if !known {
            return Err(TcmError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "TCM-4220",
                format!(
                    "Customer {} not found in tenant {}",
                    request.customer_id, request.tenant
                ),
            ));
        }
        if self.number_is_live(&request.msisdn) {
            return Err(TcmError::msisdn_active());
        }
        let index = self.subscriptions.len();
        let subscription = Subscription {
            id: record_id('S', index),
            request,
            status: Status::Active,
            activated_at: now.to_owned(),
            terminated_at: None,
            last_modified_at: now.to_owned(),
        };
        let body = subscription.json();
        self.subscriptions.push(subscription);
        self.record(request_id, Created::Subscription(index));
        Ok((StatusCode::CREATED, axum::Json(body)))
    }

    fn record(&mut self, request_id: &str, created: Created) {
        self.requests
            .entry(request_id.to_owned())
            .or_default()
            .created = Some(created);
    }

    fn ledger(&self) -> Value {
        let requests: serde_json::Map<String, Value> = self
            .requests
            .iter()
            .map(|(id, log)| {
                let created = log.created.map(|c| match c {
                    Created::Customer(i) => record_id('C', i),
                    Created::Subscription(i) => record_id('S', i),
                });
                (id.clone(), json!({ "seen": log.seen, "created": created }))
            })
            .collect();
        json!({
            "customers": self.customers.iter().map(Customer::json).collect::<Vec<_>>(),
            "subscriptions": self.subscriptions.iter().map(Subscription::json).collect::<Vec<_>>(),
            "requests": requests,
        })
    }
}

// ---- the API ----

/// The `X-Request-Id` of a create.
fn request_id(headers: &HeaderMap) -> Result<String, TcmError> {
    let id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or_default();
    if id.is_empty() || id.len() > MAX_REQUEST_ID {
        return Err(TcmError::new(
            StatusCode::BAD_REQUEST,
            "TCM-4000",
            format!("X-Request-Id header is required (1 to {MAX_REQUEST_ID} characters)"),
        ));
    }
    Ok(id.to_owned())
}

/// UTC, `YYYY-MM-DDThh:mm:ssZ`.
fn timestamp(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (year, month, day) = civil_date(secs / 86_400);
    let (hour, minute, second) = (secs % 86_400 / 3_600, secs % 3_600 / 60, secs % 60);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

/// The proleptic Gregorian date `days` after 1970-01-01, counted in 400-year eras from
/// 0000-03-01 so that the leap day falls at the end of each year.
fn civil_date(days: u64) -> (u64, u64, u64) {
    let from_march_0000 = days + 719_468;
    let era = from_march_0000 / 146_097;
    let day_of_era = from_march_0000 % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

fn now() -> String {
    timestamp(SystemTime::now())
}

fn create_customer_in(books: &mut Books, request_id: &str, body: &[u8], now: &str) -> Answer {
    let earlier = books.see(request_id);
    let request: NewCustomer = parse(body)?;
    request.validate()?;
    match earlier {
        None => books.add_customer(request_id, request, now),
        Some(Created::Customer(i)) if books.customers[i].request == request => {
            ok(books.customers[i].json())
        }
        Some(_) => Err(TcmError::request_id_reused()),
    }
}

fn create_subscription_in(books: &mut Books, request_id: &str, body: &[u8], now: &str) -> Answer {
    let earlier = books.see(request_id);
    let request: NewSubscription = parse(body)?;
    request.validate()?;
    match earlier {
        None => books.add_subscription(request_id, request, now),
        Some(Created::Subscription(i)) if books.subscriptions[i].request == request => {
            ok(books.subscriptions[i].json())
        }
        Some(_) => Err(TcmError::request_id_reused()),
    }
}

async fn create_customer(State(sim): State<Sim>, headers: HeaderMap, body: Bytes) -> Answer {
    let request_id = request_id(&headers)?;
    create_customer_in(&mut sim.lock().books, &request_id, &body, &now())
}

async fn create_subscription(State(sim): State<Sim>, headers: HeaderMap, body: Bytes) -> Answer {
    let request_id = request_id(&headers)?;
    create_subscription_in(&mut sim.lock().books, &request_id, &body, &now())
}

async fn get_customer(State(sim): State<Sim>, Path(id): Path<String>) -> Answer {
    let books = &sim.lock().books;
    let customer = books
        .customer(&id)
        .ok_or_else(|| TcmError::not_found(format!("Customer {id} not found")))?;
    ok(customer.json())
}

async fn get_subscription(State(sim): State<Sim>, Path(id): Path<String>) -> Answer {
    ok(sim.lock().books.subscription(&id)?.json())
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    tenant: Option<String>,
    msisdn: Option<String>,
    page: Option<usize>,
    page_size: Option<usize>,
}

/// A filter that an absent or empty parameter leaves open.
fn matches(filter: Option<&String>, value: &str) -> bool {
    filter.is_none_or(|f| f.is_empty() || f == value)
}

fn list_in(books: &Books, query: &ListQuery) -> Answer {
    let page = query.page.unwrap_or(1);
    let page_size = query.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
    check(page >= 1, "page", "1 or more")?;
    let size_ok = (1..=MAX_PAGE_SIZE).contains(&page_size);
    check(size_ok, "pageSize", &format!("1 to {MAX_PAGE_SIZE}"))?;
    // Records are kept in id order: the pages of a walk stay put while statuses change.
    let found: Vec<&Subscription> = books
        .subscriptions
        .iter()
        .filter(|s| matches(query.tenant.as_ref(), &s.request.tenant))
        .filter(|s| matches(query.msisdn.as_ref(), &s.request.msisdn))
        .collect();
    let items: Vec<Value> = found
        .iter()
        .skip((page - 1).saturating_mul(page_size))
        .take(page_size)
        .map(|s| s.json())
        .collect();
    ok(json!({
        "items": items,
        "page": page,
        "pageSize": page_size,
        "totalItems": found.len(),
        "totalPages": found.len().div_ceil(page_size),
    }))
}

async fn list_subscriptions(State(sim): State<Sim>, RawQuery(query): RawQuery) -> Answer {
    let query: ListQuery = serde_urlencoded::from_str(query.as_deref().unwrap_or_default())
        .map_err(|e| TcmError::invalid(format!("Invalid query: {e}")))?;
    list_in(&sim.lock().books, &query)
}

async fn terminate(State(sim): State<Sim>, Path(id): Path<String>) -> Answer {
    let now = now();
    let books = &mut sim.lock().books;
    let subscription = books.subscription_mut(&id)?;
    if subscription.status == Status::Terminated {
        return Err(TcmError::new(
            StatusCode::CONFLICT,
            "TCM-4093",
            format!("Subscription {id} is already terminated"),
        ));
    }
    subscription.set_status(Status::Terminated, &now);
    ok(subscription.json())
}

async fn health() -> Response {
    axum::Json(json!({ "status": "UP" })).into_response()
}

async fn unknown() -> Response {
    TcmError::not_found("Not found").into_response()
}

async fn method_not_allowed() -> Response {
    TcmError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "TCM-4050",
        "Method not allowed",
    )
    .into_response()
}

// ---- faults ----

/// What `/_sim/faults` sets (see the module docs).
#[derive(Debug, Clone, Copy, Default, Serialize)]
struct Faults {
    latency_ms: u64,
    fail_next: u32,
    timeout_next: u32,
    outage: bool,
    rate_limit_per_second: u32,
    lose_response_next: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultsPatch {
    latency_ms: Option<u64>,
    fail_next: Option<u32>,
    timeout_next: Option<u32>,
    outage: Option<bool>,
    rate_limit_per_second: Option<u32>,
    lose_response_next: Option<u32>,
}

impl Faults {
    fn apply(&mut self, patch: FaultsPatch) {
        self.latency_ms = patch.latency_ms.unwrap_or(self.latency_ms);
        self.fail_next = patch.fail_next.unwrap_or(self.fail_next);
        self.timeout_next = patch.timeout_next.unwrap_or(self.timeout_next);
        self.outage = patch.outage.unwrap_or(self.outage);
        self.rate_limit_per_second = patch
            .rate_limit_per_second
            .unwrap_or(self.rate_limit_per_second);
        self.lose_response_next = patch.lose_response_next.unwrap_or(self.lose_response_next);
    }
}

/// The rate limiter's window: a second from its first call.
#[derive(Debug, Default)]
struct RateWindow {
    started: Option<Instant>,
    calls: u32,
}

impl RateWindow {
    /// Whether one more call fits in `limit` calls a second (0: no limit).
    fn admit(&mut self, limit: u32, now: Instant) -> bool {
        if limit == 0 {
            return true;
        }
        let expired = self
            .started
            .is_none_or(|s| now.duration_since(s) >= Duration::from_secs(1));
        if expired {
            *self = Self {
                started: Some(now),
                calls: 0,
            };
        }
        if self.calls >= limit {
            return false;
        }
        self.calls += 1;
        true
    }
}

/// An injected failure that a call takes its turn of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Injected {
    Hang,
    Fail,
}

/// Takes one from a fault's countdown; whether there was one.
fn take(counter: &mut u32) -> bool {
    let had = *counter > 0;
    *counter = counter.saturating_sub(1);
    had
}

// ---- connections a handler can hang up on ----

/// A connection's hang-up switch, in every request's extensions (as `ConnectInfo`). A
/// handler always returns an answer; flipping this first makes the connection fail to write
/// it, so hyper closes the connection and the client gets nothing.
#[derive(Debug, Clone)]
struct Connection(Arc<AtomicBool>);

impl Connection {
    fn hang_up(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Connected<IncomingStream<'_, Switchboard>> for Connection {
    fn connect_info(stream: IncomingStream<'_, Switchboard>) -> Self {
        Self(Arc::clone(&stream.io().hung_up))
    }
}

/// A TCP connection that reads end-of-stream and refuses every write once hung up.
#[derive(Debug)]
struct Line {
    stream: TcpStream,
    hung_up: Arc<AtomicBool>,
}

impl Line {
    fn is_hung_up(&self) -> bool {
        self.hung_up.load(Ordering::SeqCst)
    }
}

fn hung_up_error() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "hung up by the simulator")
}

impl AsyncRead for Line {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let line = self.get_mut();
        if line.is_hung_up() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut line.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Line {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let line = self.get_mut();
        if line.is_hung_up() {
            return Poll::Ready(Err(hung_up_error()));
        }
        Pin::new(&mut line.stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let line = self.get_mut();
        if line.is_hung_up() {
            return Poll::Ready(Err(hung_up_error()));
        }
        Pin::new(&mut line.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// A TCP listener whose connections are [`Line`]s.
#[derive(Debug)]
struct Switchboard(TcpListener);

impl axum::serve::Listener for Switchboard {
    type Io = Line;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Line, SocketAddr) {
        // TcpListener's own accept, which retries on errors.
        let (stream, address) = axum::serve::Listener::accept(&mut self.0).await;
        let line = Line {
            stream,
            hung_up: Arc::default(),
        };
        (line, address)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

fn connection(request: &Request) -> Option<Connection> {
    let info = request.extensions().get::<ConnectInfo<Connection>>()?;
    Some(info.0.clone())
}

// ---- the simulator ----

#[derive(Debug, Default)]
struct SimState {
    books: Books,
    faults: Faults,
    window: RateWindow,
}

#[derive(Debug, Clone, Default)]
struct Sim(Arc<Mutex<SimState>>);

impl Sim {
    /// The state; a panic elsewhere while holding the lock leaves it usable.
    fn lock(&self) -> MutexGuard<'_, SimState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The load balancer in front of TCM: during an outage it answers everything itself.
async fn load_balancer(State(sim): State<Sim>, request: Request, next: Next) -> Response {
    if sim.lock().faults.outage {
        return maintenance_page();
    }
    next.run(request).await
}

fn maintenance_page() -> Response {
    let html = "<!DOCTYPE html>\n<html>\n<head><title>503 Service Temporarily Unavailable\
                </title></head>\n<body>\n<h1>Service Temporarily Unavailable</h1>\n\
                <p>TCM is down for maintenance. Please try again later.</p>\n<hr>\n\
                <address>load balancer</address>\n</body>\n</html>\n";
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, Html(html)).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
    response
}

/// What befalls an API call before TCM's application sees it (the order is in the module
/// docs). Latency is slept outside the lock, so calls keep overlapping as they would.
async fn backend_faults(State(sim): State<Sim>, request: Request, next: Next) -> Response {
    let (admitted, latency) = {
        let mut state = sim.lock();
        let limit = state.faults.rate_limit_per_second;
        (
            state.window.admit(limit, Instant::now()),
            state.faults.latency_ms,
        )
    };
    if !admitted {
        return rate_limited();
    }
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let injected = {
        let faults = &mut sim.lock().faults;
        if take(&mut faults.timeout_next) {
            Some(Injected::Hang)
        } else if take(&mut faults.fail_next) {
            Some(Injected::Fail)
        } else {
            None
        }
    };
    match injected {
        Some(Injected::Hang) => hang(connection(&request)).await,
        Some(Injected::Fail) => TcmError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "TCM-5000",
            "Internal error",
        )
        .into_response(),
        None => next.run(request).await,
    }
}

fn rate_limited() -> Response {
    let mut response = TcmError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "TCM-4290",
        "Rate limit exceeded",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// Hangs, then closes the connection without an answer. (Outside `serve`, with no
/// connection to close, answers 504 as a gateway would.)
async fn hang(connection: Option<Connection>) -> Response {
    tokio::time::sleep(HANG).await;
    if let Some(connection) = connection {
        connection.hang_up();
    }
    StatusCode::GATEWAY_TIMEOUT.into_response()
}

/// Around a create: applies it, then, while `lose_response_next` lasts, loses a
/// successful answer on the way back.
async fn lose_answer(State(sim): State<Sim>, request: Request, next: Next) -> Response {
    let connection = connection(&request);
    let response = next.run(request).await;
    if let Some(connection) = connection
        && response.status().is_success()
        && take(&mut sim.lock().faults.lose_response_next)
    {
        connection.hang_up();
    }
    response
}

// ---- simulator controls ----

fn faults_answer(faults: &Faults) -> Answer {
    ok(json!(faults))
}

async fn get_faults(State(sim): State<Sim>) -> Answer {
    faults_answer(&sim.lock().faults)
}

async fn set_faults(State(sim): State<Sim>, body: Bytes) -> Answer {
    let patch: FaultsPatch = parse(&body)?;
    let faults = &mut sim.lock().faults;
    faults.apply(patch);
    faults_answer(faults)
}

async fn clear_faults(State(sim): State<Sim>) -> Answer {
    let mut state = sim.lock();
    state.faults = Faults::default();
    state.window = RateWindow::default();
    faults_answer(&state.faults)
}

async fn ledger(State(sim): State<Sim>) -> Answer {
    ok(sim.lock().books.ledger())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Drift {
    status: Status,
}

fn drift_in(books: &mut Books, id: &str, drift: &Drift, now: &str) -> Answer {
    let current = books.subscription_mut(id)?;
    // Reviving a terminated subscription takes its number back, if no one else holds it.
    let revives = drift.status != Status::Terminated && !current.is_live();
    let msisdn = current.request.msisdn.clone();
    if revives && books.number_is_live(&msisdn) {
        return Err(TcmError::msisdn_active());
    }
    let subscription = books.subscription_mut(id)?;
    subscription.set_status(drift.status, now);
    ok(subscription.json())
}

async fn drift(State(sim): State<Sim>, Path(id): Path<String>, body: Bytes) -> Answer {
    let drift: Drift = parse(&body)?;
    drift_in(&mut sim.lock().books, &id, &drift, &now())
}

/// The simulator's routes, each layer named after what it stands for.
fn router(sim: Sim) -> Router {
    let lose = middleware::from_fn_with_state(sim.clone(), lose_answer);
    let api = Router::new()
        .route(
            "/tcm/v1/customers",
            post(create_customer).layer(lose.clone()),
        )
        .route("/tcm/v1/customers/{id}", get(get_customer))
        .route(
            "/tcm/v1/subscriptions",
            get(list_subscriptions).merge(post(create_subscription).layer(lose)),
        )
        .route("/tcm/v1/subscriptions/{id}", get(get_subscription))
        .route("/tcm/v1/subscriptions/{id}/terminate", post(terminate))
        .route_layer(middleware::from_fn_with_state(sim.clone(), backend_faults));
    let behind_load_balancer = api
        .route("/healthz", get(health))
        .fallback(unknown)
        .layer(middleware::from_fn_with_state(sim.clone(), load_balancer));
    let controls = Router::new()
        .route(
            "/_sim/faults",
            get(get_faults).post(set_faults).delete(clear_faults),
        )
        .route("/_sim/ledger", get(ledger))
        .route("/_sim/subscriptions/{id}/drift", post(drift));
    behind_load_balancer
        .merge(controls)
        .method_not_allowed_fallback(method_not_allowed)
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
    let listener = TcpListener::bind(listen).await?;
    let address = listener.local_addr()?;
    on_bound(address);
    tracing::info!(%address, "TCM simulator listening.");
    let app = router(Sim::default()).into_make_service_with_connect_info::<Connection>();
    axum::serve(Switchboard(listener), app)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_rfc_3339() {
        let at = |secs| timestamp(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_773_480_245), "2026-03-14T09:24:05Z");
        assert_eq!(at(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn dates() {
        for good in ["2026-03-14", "2024-02-29", "2000-02-29", "1990-12-31"] {
            assert!(valid_date(good), "{good}");
        }
        for bad in [
            "2026-3-14",
            "2026-02-29",
            "1900-02-29",
            "2026-13-01",
            "2026-04-31",
            "2026-00-10",
            "2026-01-00",
            "20260314",
            "2026-03-14T00:00:00Z",
            "+026-03-14",
        ] {
            assert!(!valid_date(bad), "{bad}");
        }
    }

    #[test]
    fn numbers_and_cards() {
        assert!(valid_msisdn("+4512345678"));
        for bad in ["4512345678", "+0512345678", "+45 1234 5678", "+45123", "+"] {
            assert!(!valid_msisdn(bad), "{bad}");
        }
        assert!(valid_iccid("8945000000000000012"));
        assert!(!valid_iccid("1945000000000000012"));
        assert!(!valid_iccid("894500000000"));
        assert!(valid_email("freja@example.dk"));
        assert!(!valid_email("freja"));
    }

    #[test]
    fn record_ids_round_trip() {
        assert_eq!(record_id('S', 0), "S0000001");
        assert_eq!(record_index('S', "S0000001"), Some(0));
        assert_eq!(record_index('S', "S0000012"), Some(11));
        for bad in ["S0000000", "C0000001", "S1", "S+000001", "S00000001"] {
            assert_eq!(record_index('S', bad), None, "{bad}");
        }
    }

    #[test]
    fn the_rate_window_admits_the_limit_per_second() {
        let mut window = RateWindow::default();
        let start = Instant::now();
        assert!(window.admit(2, start));
        assert!(window.admit(2, start + Duration::from_millis(10)));
        assert!(!window.admit(2, start + Duration::from_millis(999)));
        assert!(window.admit(2, start + Duration::from_millis(1_000)));
        assert!(window.admit(0, start), "0 is no limit");
    }

    #[test]
    fn countdowns_stop_at_zero() {
        let mut n = 1;
        assert!(take(&mut n));
        assert!(!take(&mut n));
        assert_eq!(n, 0);
    }
}
