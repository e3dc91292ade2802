//! A simulator of an SM-DP+ (the server eSIM profiles are downloaded from) for tests and the
//! local run (`tcom smdp-sim`): the operator-facing ES2+ interface of GSMA SGP.22, a pool of
//! profiles, and a simulated device side so a test can play the phone that downloads one.
//!
//! # Conventions
//!
//! - ES2+ is JSON over HTTPS `POST`; the simulator speaks plain HTTP. Members are camelCase;
//!   members a function does not know are refused; an absent optional member and `null` are
//!   the same.
//! - Every request carries `Authorization: Bearer <token>` (any non-empty token) and
//!   `X-Admin-Protocol: gsma/rsp/v2.<minor>.<patch>` (the client sends `gsma/rsp/v2.1.0`).
//! - Every request body has `header: {functionRequesterIdentifier, functionCallIdentifier}`
//!   (each 1 to 255 characters); every ES2+ answer has `header: {functionExecutionStatus:
//!   {status, statusCodeData?}}`. `status` is `Executed-Success`, or `Failed` with
//!   `statusCodeData: {subjectCode, reasonCode, subjectIdentifier?, message}`. As in ES2+, a
//!   `Failed` function is still HTTP 200: only requests that are not ES2+ calls at all get
//!   another HTTP status.
//!
//! ## HTTP errors
//!
//! Not ES2+ answers: `{"error": "<code>", "message": "…"}` (the outage page is text).
//!
//! | status | error | when |
//! | --- | --- | --- |
//! | 400 | `bad_request` | the body is not a JSON object |
//! | 400 | `admin_protocol` | `X-Admin-Protocol` missing or not `gsma/rsp/v2.x.y` |
//! | 401 | `unauthorized` | no bearer token (or an empty one); with `WWW-Authenticate: Bearer` |
//! | 404 | `not_found` | an unknown path (an unknown ES2+ function) |
//! | 405 | `method_not_allowed` | a method the path does not take |
//! | 500 | `internal_error` | an injected failure (`fail_next`) |
//! | 503 | (text) | an injected outage, `Retry-After: 30` |
//!
//! The token is checked before the protocol header, and both before the body.
//!
//! ## Function status codes (`Failed`, HTTP 200)
//!
//! SGP.22-style subject and reason codes. `subjectIdentifier` is the ICCID when the subject is
//! a profile.
//!
//! | subjectCode | reasonCode | message | when |
//! | --- | --- | --- | --- |
//! | 8.1 | 2.2 | Mandatory element missing | `header` or one of its members, or a mandatory member (`iccid`, `releaseFlag`, `finalProfileStatusIndicator`) is missing |
//! | 8.1 | 2.1 | Invalid | a member of the wrong type, an unknown member, or a `header` member out of bounds |
//! | 8.1 | 3.3 | Already in use | a `functionCallIdentifier` already used for another function or another body |
//! | 8.1.1 | 2.1 | Invalid | `eid` is not 32 digits |
//! | 8.1.1 | 3.8 | Refused | the EID differs from the EID the order already has |
//! | 8.1.1 | 3.10 | Invalid association | `cancelOrder` names another EID than the order's |
//! | 8.2.1 | 2.1 | Invalid | `iccid` is not 19 or 20 digits starting `89` |
//! | 8.2.1 | 3.9 | Profile ICCID unknown | no profile of the pool has the ICCID |
//! | 8.2.1 | 3.3 | Profile ICCID already in use | `downloadOrder` for a profile that is ordered; `confirmOrder` again with another matching ID or confirmation code |
//! | 8.2.1 | 3.7 | Profile ICCID unavailable | the profile was cancelled with `Unavailable` |
//! | 8.2.1 | 3.5 | Invalid transition | the function does not apply to the profile's state (table below) |
//! | 8.2.5 | 2.1 | Invalid | `profileType` is empty |
//! | 8.2.5 | 3.9 | Profile type unknown | the pool has no profiles of that type |
//! | 8.2.5 | 3.7 | No profile available | every profile (of the type) is ordered or withdrawn |
//! | 8.2.5 | 3.10 | Invalid association | `iccid` and `profileType` name a profile of another type |
//! | 8.2.6 | 2.1 | Invalid | `matchingId` is not 1 to 255 of `A`–`Z`, `0`–`9` and `-` |
//! | 8.2.6 | 3.3 | Matching ID already in use | another profile's order has that matching ID |
//! | 8.2.6 | 3.10 | Invalid association | `cancelOrder` names another matching ID than the order's |
//! | 8.2.7 | 2.1 | Invalid | `confirmationCode` is not 1 to 64 printable ASCII characters |
//!
//! ## Idempotency
//!
//! `functionCallIdentifier` is the idempotency key. A call whose identifier was seen before,
//! for the same function with the same body (member order does not matter), answers exactly
//! the first answer (a `Failed` one too) and does nothing; with another function or body it
//! fails 8.1 / 3.3 and does nothing either. Only calls with a readable `header` are recorded;
//! calls stopped by the HTTP errors or the faults never reached the SM-DP+.
//!
//! # The pool
//!
//! At start the pool holds `profiles_per_type` profiles (default 100) of each profile type
//! (default one type, `DEFAULT`). ICCIDs are 19 digits: `89459901`, a 10-digit serial from 1
//! in pool order, and a Luhn check digit. A profile's order moves through these states:
//!
//! | function | from | to |
//! | --- | --- | --- |
//! | `downloadOrder` | available (never ordered, or cancelled with `Available`) | `reserved` |
//! | `confirmOrder` | `reserved` | `released` with `releaseFlag: true`, else `confirmed` |
//! | `confirmOrder` (again) | `confirmed`, `released` | unchanged (`released` with `releaseFlag: true`) |
//! | `releaseProfile` | `confirmed` | `released` |
//! | `cancelOrder` | `reserved`, `confirmed`, `released` | `cancelled` |
//! | device download (`/_sim/download`) | `released` | `downloaded` |
//!
//! # ES2+ functions (`POST /gsma/rsp2/es2plus/<function>`)
//!
//! - `downloadOrder` `{header, eid?, iccid?, profileType?}` → `{header, iccid}`: reserves the
//!   profile `iccid`, or else the first available profile (of `profileType`, when given),
//!   linked to `eid` when given.
//! - `confirmOrder` `{header, iccid, eid?, matchingId?, confirmationCode?, smdsAddress?,
//!   releaseFlag}` → `{header, eid?, matchingId, smdpAddress}`: confirms a reserved profile's
//!   order. Without `matchingId` the SM-DP+ makes one: four groups of four upper-case letters
//!   and digits, `ABCD-1234-EFGH-5678`. The confirmation code, when given, is what the device
//!   must present (the operator makes it and gives it to the customer); the SM-DP+ keeps only
//!   its SHA-256. `smdsAddress` is recorded and otherwise ignored (no SM-DS is told). `eid` is
//!   answered when the order has one. Confirming a confirmed or released profile again answers
//!   the same when `matchingId` is absent or the same, the confirmation code the same and the
//!   EID not another; otherwise 8.2.1 / 3.3.
//! - `cancelOrder` `{header, iccid, eid?, matchingId?, finalProfileStatusIndicator:
//!   "Available"|"Unavailable"}` → `{header}`: ends the order. `Available` puts the profile
//!   back into the pool (its ledger entry stays `cancelled` until it is ordered again, which
//!   replaces it); `Unavailable` withdraws it for good.
//! - `releaseProfile` `{header, iccid}` → `{header}`: a confirmed profile may now be downloaded.
//! - `handleDownloadProgressInfo` (the SM-DP+ notifying the operator) is not simulated.
//! - `GET /healthz` → 200 `{"status": "UP"}`.
//!
//! # Simulator-only controls (`/_sim`: no authentication, never affected by faults)
//!
//! - `POST /_sim/download` `{activationCode, confirmationCode?, eid?}`: a device downloads the
//!   profile of an activation code `LPA:1$<SM-DP+ address>$<matching ID>…` (the optional OID
//!   and flag fields are ignored; the confirmation code is asked for whenever the order has
//!   one) → 200 `{iccid, profileType, eid, state: "downloaded"}`, or
//!   `{"error", "message"}` with:
//!
//!   | status | error | when |
//!   | --- | --- | --- |
//!   | 400 | `bad_request` | the body is not `{activationCode, confirmationCode?, eid?}` |
//!   | 400 | `activation_code_invalid` | not an SGP.22 activation code |
//!   | 404 | `smdp_address_mismatch` | the code names another SM-DP+ (compared without case) |
//!   | 404 | `matching_id_unknown` | no order has the matching ID |
//!   | 403 | `eid_mismatch` | the order is linked to another EID than the device's `eid` |
//!   | 403 | `confirmation_code_required` | the order has a confirmation code, none was given |
//!   | 403 | `confirmation_code_mismatch` | a wrong confirmation code (counted in the ledger) |
//!   | 409 | `profile_not_released` | the order is `reserved` or `confirmed` |
//!   | 409 | `profile_downloaded` | downloaded already |
//!   | 409 | `order_cancelled` | the order was cancelled |
//!
//! - `POST /_sim/faults` `{"latency_ms", "fail_next", "timeout_next", "outage",
//!   "lose_response_next"}` (each optional: the members given replace the current ones) → 200
//!   the faults now in force; `GET` shows them, `DELETE` clears them.
//!   - `outage`: every request but `/_sim` (`/healthz` too) is answered 503, text, with
//!     `Retry-After: 30`.
//!   - The others apply to the ES2+ functions only, in this order: `latency_ms` before every
//!     call; each of the next `timeout_next` calls hangs 30 s, then its connection is closed
//!     without an answer; each of the next `fail_next` calls answers 500 `internal_error`.
//!     Such calls never reach the SM-DP+: nothing is recorded.
//!   - `lose_response_next`: the next n calls answered HTTP 200 (`Failed` ones too) are
//!     executed and recorded, then the connection is closed without the answer: what a
//!     retry with the same `functionCallIdentifier` is for.
//! - `GET /_sim/ledger` → `{"smdpAddress", "availableProfiles", "orders": {"<iccid>": {state,
//!   profileType, eid, matchingId, confirmationCode: true|false, smdsAddress,
//!   finalProfileStatus, wrongConfirmationCodes, reservedAt, downloadedAt}}, "calls":
//!   {"<functionCallIdentifier>": {function, seen, status}}}`: every profile ever ordered
//!   (never a confirmation code, only whether there is one), and per call identifier how many
//!   calls the SM-DP+ saw with it and the status of its first answer.
//!
//! # The SM-DP+ address
//!
//! The address confirmed orders name (and activation codes must carry) is
//! [`SmdpSimOptions::smdp_address`], by default [`DEFAULT_SMDP_ADDRESS`] (`smdp.tcom.test`);
//! `tcom smdp-sim --smdp-address` sets it. It is not derived from the listen address: an
//! activation code needs a host name, never an IP address or `localhost`.
//!
//! State is in memory, shared by all requests, and lost on restart.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rand::Rng as _;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use super::ActivationCode;
use crate::sim_line::{self, HangUp};

/// The SM-DP+ address the simulator answers unless told otherwise.
pub const DEFAULT_SMDP_ADDRESS: &str = "smdp.tcom.test";

/// The profile type of the default pool.
pub const DEFAULT_PROFILE_TYPE: &str = "DEFAULT";

/// The `X-Admin-Protocol` major version the simulator speaks.
const ADMIN_PROTOCOL_PREFIX: &str = "gsma/rsp/v2.";

/// ICCIDs of the pool: `89` telecom, `45` Denmark, `99` a test issuer, `01` this simulator.
const ICCID_PREFIX: &str = "89459901";

const MAX_IDENTIFIER: usize = 255;
const MAX_MATCHING_ID: usize = 255;
const MAX_CONFIRMATION_CODE: usize = 64;

const EXECUTED_SUCCESS: &str = "Executed-Success";
const FAILED: &str = "Failed";

/// How the simulator is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmdpSimOptions {
    /// The FQDN confirmed orders name as `smdpAddress`.
    pub smdp_address: String,
    /// The profile types of the pool, each with `profiles_per_type` profiles.
    pub profile_types: Vec<String>,
    pub profiles_per_type: usize,
}

impl Default for SmdpSimOptions {
    fn default() -> Self {
        Self {
            smdp_address: DEFAULT_SMDP_ADDRESS.to_owned(),
            profile_types: vec![DEFAULT_PROFILE_TYPE.to_owned()],
            profiles_per_type: 100,
        }
    }
}

// ---- answers ----

/// A `Failed` function execution status.
#[derive(Debug, Clone)]
struct Failure {
    subject: &'static str,
    reason: &'static str,
    message: String,
    subject_identifier: Option<String>,
}

impl Failure {
    fn new(subject: &'static str, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            subject,
            reason,
            message: message.into(),
            subject_identifier: None,
        }
    }

    /// The profile the failure is about.
    fn of(mut self, iccid: &str) -> Self {
        self.subject_identifier = Some(iccid.to_owned());
        self
    }

    fn missing(what: impl Into<String>) -> Self {
        Self::new(
            "8.1",
            "2.2",
            format!("Mandatory element missing: {}", what.into()),
        )
    }

    fn invalid(subject: &'static str, what: impl Into<String>) -> Self {
        Self::new(subject, "2.1", format!("Invalid: {}", what.into()))
    }

    fn iccid_unknown(iccid: &str) -> Self {
        Self::new("8.2.1", "3.9", "Profile ICCID unknown").of(iccid)
    }

    fn iccid_in_use(iccid: &str) -> Self {
        Self::new("8.2.1", "3.3", "Profile ICCID already in use").of(iccid)
    }

    fn invalid_transition(iccid: &str, what: &str) -> Self {
        Self::new("8.2.1", "3.5", format!("Invalid transition: {what}")).of(iccid)
    }

    fn eid_refused(iccid: &str) -> Self {
        Self::new(
            "8.1.1",
            "3.8",
            "Refused: the EID differs from the order's EID",
        )
        .of(iccid)
    }

    fn matching_id_in_use() -> Self {
        Self::new("8.2.6", "3.3", "Matching ID already in use")
    }

    fn status(&self) -> Value {
        let mut data = Map::new();
        data.insert("subjectCode".into(), json!(self.subject));
        data.insert("reasonCode".into(), json!(self.reason));
        if let Some(id) = &self.subject_identifier {
            data.insert("subjectIdentifier".into(), json!(id));
        }
        data.insert("message".into(), json!(self.message));
        json!({ "status": FAILED, "statusCodeData": data })
    }
}

type Outcome = Result<Map<String, Value>, Failure>;

/// The ES2+ answer of an outcome: its header first, then the function's members.
fn es2plus_answer(outcome: Outcome) -> Value {
    let mut answer = Map::new();
    match outcome {
        Ok(members) => {
            let status = json!({ "status": EXECUTED_SUCCESS });
            answer.insert(
                "header".into(),
                json!({ "functionExecutionStatus": status }),
            );
            answer.extend(members);
        }
        Err(failure) => {
            let status = failure.status();
            answer.insert(
                "header".into(),
                json!({ "functionExecutionStatus": status }),
            );
        }
    }
    Value::Object(answer)
}

fn respond(answer: Value) -> Response {
    (StatusCode::OK, axum::Json(answer)).into_response()
}

/// A simulator answer that is not an ES2+ one.
fn http_error(status: StatusCode, error: &str, message: impl Into<String>) -> Response {
    let body = json!({ "error": error, "message": message.into() });
    (status, axum::Json(body)).into_response()
}

// ---- requests ----

/// Reads a function's body; serde's words decide between missing (2.2) and invalid (2.1).
fn read<T: DeserializeOwned>(body: &Value) -> Result<T, Failure> {
    T::deserialize(body).map_err(|e| {
        let text = e.to_string();
        if text.starts_with("missing field") {
            Failure::missing(text)
        } else {
            Failure::invalid("8.1", text)
        }
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DownloadOrder {
    #[allow(dead_code)]
    header: IgnoredAny,
    eid: Option<String>,
    iccid: Option<String>,
    profile_type: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConfirmOrder {
    #[allow(dead_code)]
    header: IgnoredAny,
    iccid: String,
    eid: Option<String>,
    matching_id: Option<String>,
    confirmation_code: Option<String>,
    smds_address: Option<String>,
    release_flag: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum FinalStatus {
    Available,
    Unavailable,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CancelOrder {
    #[allow(dead_code)]
    header: IgnoredAny,
    iccid: String,
    eid: Option<String>,
    matching_id: Option<String>,
    final_profile_status_indicator: FinalStatus,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReleaseProfile {
    #[allow(dead_code)]
    header: IgnoredAny,
    iccid: String,
}

fn digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

fn check_iccid(iccid: &str) -> Result<(), Failure> {
    if (19..=20).contains(&iccid.len()) && digits(iccid) && iccid.starts_with("89") {
        Ok(())
    } else {
        Err(Failure::invalid("8.2.1", "iccid must be 19 or 20 digits starting 89").of(iccid))
    }
}

fn check_eid(eid: Option<&String>) -> Result<(), Failure> {
    match eid {
        Some(eid) if !(eid.len() == 32 && digits(eid)) => {
            Err(Failure::invalid("8.1.1", "eid must be 32 digits"))
        }
        _ => Ok(()),
    }
}

fn valid_matching_id(id: &str) -> bool {
    (1..=MAX_MATCHING_ID).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
}

fn check_matching_id(id: Option<&String>) -> Result<(), Failure> {
    match id {
        Some(id) if !valid_matching_id(id) => Err(Failure::invalid(
            "8.2.6",
            "matchingId must be 1 to 255 of A-Z, 0-9 and -",
        )),
        _ => Ok(()),
    }
}

fn check_confirmation_code(code: Option<&String>) -> Result<(), Failure> {
    match code {
        Some(code)
            if !(1..=MAX_CONFIRMATION_CODE).contains(&code.len())
                || !code.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Err(Failure::invalid(
                "8.2.7",
                "confirmationCode must be 1 to 64 printable ASCII characters",
            ))
        }
        _ => Ok(()),
    }
}

/// What the SM-DP+ keeps of a confirmation code.
fn digest(code: &str) -> [u8; 32] {
    Sha256::digest(code.as_bytes()).into()
}

/// `ABCD-1234-EFGH-5678`: four groups of four upper-case letters and digits.
fn random_matching_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::thread_rng();
    let groups: Vec<String> = (0..4)
        .map(|_| {
            (0..4)
                .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
                .collect()
        })
        .collect();
    groups.join("-")
}

// ---- the SM-DP+'s records ----

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum OrderState {
    Reserved,
    Confirmed,
    Released,
    Downloaded,
    Cancelled,
}

#[derive(Debug)]
struct Order {
    state: OrderState,
    eid: Option<String>,
    matching_id: Option<String>,
    /// SHA-256 of the confirmation code: the code itself is not kept.
    confirmation_code: Option<[u8; 32]>,
    smds_address: Option<String>,
    final_status: Option<FinalStatus>,
    wrong_confirmation_codes: u32,
    reserved_at: String,
    downloaded_at: Option<String>,
}

#[derive(Debug)]
struct Profile {
    iccid: String,
    profile_type: String,
    order: Option<Order>,
    /// Cancelled with `Unavailable`: never handed out again.
    withdrawn: bool,
}

impl Profile {
    fn is_available(&self) -> bool {
        !self.withdrawn
            && self
                .order
                .as_ref()
                .is_none_or(|o| o.state == OrderState::Cancelled)
    }

    fn ledger(&self, order: &Order) -> Value {
        json!({
            "state": order.state,
            "profileType": self.profile_type,
            "eid": order.eid,
            "matchingId": order.matching_id,
            "confirmationCode": order.confirmation_code.is_some(),
            "smdsAddress": order.smds_address,
            "finalProfileStatus": order.final_status,
            "wrongConfirmationCodes": order.wrong_confirmation_codes,
            "reservedAt": order.reserved_at,
            "downloadedAt": order.downloaded_at,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Function {
    DownloadOrder,
    ConfirmOrder,
    CancelOrder,
    ReleaseProfile,
}

impl Function {
    fn name(self) -> &'static str {
        match self {
            Self::DownloadOrder => "downloadOrder",
            Self::ConfirmOrder => "confirmOrder",
            Self::CancelOrder => "cancelOrder",
            Self::ReleaseProfile => "releaseProfile",
        }
    }
}

/// A function call identifier and what it did the first time.
#[derive(Debug)]
struct Call {
    function: Function,
    body: Value,
    answer: Value,
    seen: u32,
}

#[derive(Debug)]
struct Books {
    smdp_address: String,
    profile_types: Vec<String>,
    profiles: Vec<Profile>,
    calls: BTreeMap<String, Call>,
}

impl Books {
    fn new(options: &SmdpSimOptions) -> Self {
        let mut profiles = Vec::new();
        for profile_type in &options.profile_types {
            for _ in 0..options.profiles_per_type {
                let serial = u64::try_from(profiles.len()).expect("a small pool") + 1;
                profiles.push(Profile {
                    iccid: sim_line::iccid(ICCID_PREFIX, serial),
                    profile_type: profile_type.clone(),
                    order: None,
                    withdrawn: false,
                });
            }
        }
        Self {
            smdp_address: options.smdp_address.clone(),
            profile_types: options.profile_types.clone(),
            profiles,
            calls: BTreeMap::new(),
        }
    }

    fn profile_mut(&mut self, iccid: &str) -> Result<&mut Profile, Failure> {
        check_iccid(iccid)?;
        self.profiles
            .iter_mut()
            .find(|p| p.iccid == iccid)
            .ok_or_else(|| Failure::iccid_unknown(iccid))
    }

    fn matching_id_taken(&self, id: &str, except_iccid: &str) -> bool {
        self.profiles.iter().any(|p| {
            p.iccid != except_iccid
                && p.order
                    .as_ref()
                    .is_some_and(|o| o.matching_id.as_deref() == Some(id))
        })
    }

    fn execute(&mut self, function: Function, body: &Value, now: &str) -> Outcome {
        match function {
            Function::DownloadOrder => self.download_order(read(body)?, now),
            Function::ConfirmOrder => self.confirm_order(read(body)?),
            Function::CancelOrder => self.cancel_order(read(body)?),
            Function::ReleaseProfile => self.release_profile(read(body)?),
        }
    }

    fn download_order(&mut self, request: DownloadOrder, now: &str) -> Outcome {
        check_eid(request.eid.as_ref())?;
        if let Some(profile_type) = &request.profile_type {
            if profile_type.is_empty() {
                return Err(Failure::invalid("8.2.5", "profileType is empty"));
            }
            if !self.profile_types.contains(profile_type) {
                return Err(Failure::new("8.2.5", "3.9", "Profile type unknown"));
            }
        }
        let wanted_type = request.profile_type.as_deref();
        let profile = match &request.iccid {
            Some(iccid) => {
                let profile = self.profile_mut(iccid)?;
                if profile.withdrawn {
                    return Err(Failure::new("8.2.1", "3.7", "Profile ICCID unavailable").of(iccid));
                }
                if !profile.is_available() {
                    return Err(Failure::iccid_in_use(iccid));
                }
                if wanted_type.is_some_and(|t| t != profile.profile_type) {
                    return Err(Failure::new(
                        "8.2.5",
                        "3.10",
                        "Invalid association: the profile is of another type",
                    )
                    .of(iccid));
                }
                profile
            }
            None => self
                .profiles
                .iter_mut()
                .find(|p| p.is_available() && wanted_type.is_none_or(|t| t == p.profile_type))
                .ok_or_else(|| Failure::new("8.2.5", "3.7", "No profile available"))?,
        };
        profile.order = Some(Order {
            state: OrderState::Reserved,
            eid: request.eid,
            matching_id: None,
            confirmation_code: None,
            smds_address: None,
            final_status: None,
            wrong_confirmation_codes: 0,
            reserved_at: now.to_owned(),
            downloaded_at: None,
        });
        let mut members = Map::new();
        members.insert("iccid".into(), json!(profile.iccid));
        Ok(members)
    }

    fn confirm_order(&mut self, request: ConfirmOrder) -> Outcome {
        check_eid(request.eid.as_ref())?;
        check_matching_id(request.matching_id.as_ref())?;
        check_confirmation_code(request.confirmation_code.as_ref())?;
        let iccid = request.iccid.clone();
        let state = self.profile_mut(&iccid)?.order.as_ref().map(|o| o.state);
        let code = request.confirmation_code.as_deref().map(digest);
        match state {
            None | Some(OrderState::Cancelled) => {
                return Err(Failure::invalid_transition(
                    &iccid,
                    "the profile has no order (downloadOrder first)",
                ));
            }
            Some(OrderState::Downloaded) => {
                return Err(Failure::invalid_transition(
                    &iccid,
                    "the profile was downloaded",
                ));
            }
            Some(OrderState::Reserved) => {
                let matching_id = match &request.matching_id {
                    Some(id) if self.matching_id_taken(id, &iccid) => {
                        return Err(Failure::matching_id_in_use());
                    }
                    Some(id) => id.clone(),
                    None => loop {
                        let id = random_matching_id();
                        if !self.matching_id_taken(&id, &iccid) {
                            break id;
                        }
                    },
                };
                let profile = self.profile_mut(&iccid)?;
                let order = profile.order.as_mut().expect("a reserved order");
                if let (Some(theirs), Some(ours)) = (&request.eid, &order.eid)
                    && theirs != ours
                {
                    return Err(Failure::eid_refused(&iccid));
                }
                order.eid = order.eid.take().or(request.eid);
                order.matching_id = Some(matching_id);
                order.confirmation_code = code;
                order.smds_address = request.smds_address;
                order.state = if request.release_flag {
                    OrderState::Released
                } else {
                    OrderState::Confirmed
                };
            }
            Some(OrderState::Confirmed | OrderState::Released) => {
                let profile = self.profile_mut(&iccid)?;
                let order = profile.order.as_mut().expect("a confirmed order");
                let other_matching_id = request
                    .matching_id
                    .as_ref()
                    .is_some_and(|id| order.matching_id.as_ref() != Some(id));
                if other_matching_id || order.confirmation_code != code {
                    return Err(Failure::iccid_in_use(&iccid));
                }
                if let (Some(theirs), Some(ours)) = (&request.eid, &order.eid)
                    && theirs != ours
                {
                    return Err(Failure::eid_refused(&iccid));
                }
                if request.release_flag {
                    order.state = OrderState::Released;
                }
            }
        }
        let order = self
            .profile_mut(&iccid)?
            .order
            .as_ref()
            .expect("a confirmed order");
        let mut members = Map::new();
        if let Some(eid) = &order.eid {
            members.insert("eid".into(), json!(eid));
        }
        members.insert("matchingId".into(), json!(order.matching_id));
        members.insert("smdpAddress".into(), json!(self.smdp_address));
        Ok(members)
    }

    fn cancel_order(&mut self, request: CancelOrder) -> Outcome {
        check_eid(request.eid.as_ref())?;
        check_matching_id(request.matching_id.as_ref())?;
        let iccid = request.iccid;
        let profile = self.profile_mut(&iccid)?;
        let Some(order) = profile.order.as_mut() else {
            return Err(Failure::invalid_transition(
                &iccid,
                "the profile has no order",
            ));
        };
        match order.state {
            OrderState::Cancelled => {
                return Err(Failure::invalid_transition(
                    &iccid,
                    "the order is cancelled",
                ));
            }
            OrderState::Downloaded => {
                return Err(Failure::invalid_transition(
                    &iccid,
                    "the profile was downloaded",
                ));
            }
            OrderState::Reserved | OrderState::Confirmed | OrderState::Released => {}
        }
        if let Some(id) = &request.matching_id
            && order.matching_id.as_ref() != Some(id)
        {
            return Err(Failure::new(
                "8.2.6",
                "3.10",
                "Invalid association: not the order's matching ID",
            )
            .of(&iccid));
        }
        if let (Some(theirs), Some(ours)) = (&request.eid, &order.eid)
            && theirs != ours
        {
            return Err(
                Failure::new("8.1.1", "3.10", "Invalid association: not the order's EID")
                    .of(&iccid),
            );
        }
        order.state = OrderState::Cancelled;
        order.final_status = Some(request.final_profile_status_indicator);
        profile.withdrawn = request.final_profile_status_indicator == FinalStatus::Unavailable;
        Ok(Map::new())
    }

    fn release_profile(&mut self, request: ReleaseProfile) -> Outcome {
        let iccid = request.iccid;
        let profile = self.profile_mut(&iccid)?;
        match profile.order.as_mut() {
            Some(order) if order.state == OrderState::Confirmed => {
                order.state = OrderState::Released;
                Ok(Map::new())
            }
            _ => Err(Failure::invalid_transition(
                &iccid,
                "only a confirmed order is released",
            )),
        }
    }

    fn ledger(&self) -> Value {
        let orders: Map<String, Value> = self
            .profiles
            .iter()
            .filter_map(|p| Some((p.iccid.clone(), p.ledger(p.order.as_ref()?))))
            .collect();
        let calls: Map<String, Value> = self
            .calls
            .iter()
            .map(|(id, call)| {
                let status = &call.answer["header"]["functionExecutionStatus"]["status"];
                let entry = json!({
                    "function": call.function.name(),
                    "seen": call.seen,
                    "status": status,
                });
                (id.clone(), entry)
            })
            .collect();
        json!({
            "smdpAddress": self.smdp_address,
            "availableProfiles": self.profiles.iter().filter(|p| p.is_available()).count(),
            "orders": orders,
            "calls": calls,
        })
    }
}

// ---- the ES2+ functions ----

/// The call identifier of a body's header.
fn call_identifier(body: &Map<String, Value>) -> Result<String, Failure> {
    let Some(header) = body.get("header") else {
        return Err(Failure::missing("header"));
    };
    let Some(header) = header.as_object() else {
        return Err(Failure::invalid("8.1", "header must be an object"));
    };
    let mut call_id = None;
    for member in ["functionRequesterIdentifier", "functionCallIdentifier"] {
        let value = match header.get(member) {
            None | Some(Value::Null) => return Err(Failure::missing(format!("header.{member}"))),
            Some(Value::String(text)) => text,
            Some(_) => return Err(Failure::invalid("8.1", format!("header.{member}"))),
        };
        if !(1..=MAX_IDENTIFIER).contains(&value.chars().count()) {
            return Err(Failure::invalid(
                "8.1",
                format!("header.{member} must be 1 to {MAX_IDENTIFIER} characters"),
            ));
        }
        call_id = Some(value.clone());
    }
    if let Some(unknown) = header
        .keys()
        .find(|k| *k != "functionRequesterIdentifier" && *k != "functionCallIdentifier")
    {
        return Err(Failure::invalid(
            "8.1",
            format!("unknown header member {unknown}"),
        ));
    }
    Ok(call_id.expect("the loop ends with the call identifier"))
}

/// One ES2+ function call, answered at most once per call identifier (see the module docs).
fn call_in(books: &mut Books, function: Function, body: &[u8], now: &str) -> Response {
    let Ok(Value::Object(members)) = serde_json::from_slice::<Value>(body) else {
        return http_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "The body is not a JSON object",
        );
    };
    let call_id = match call_identifier(&members) {
        Ok(id) => id,
        Err(failure) => return respond(es2plus_answer(Err(failure))),
    };
    let body = Value::Object(members);
    if let Some(call) = books.calls.get_mut(&call_id) {
        call.seen += 1;
        if call.function == function && call.body == body {
            return respond(call.answer.clone());
        }
        let reused = Failure::new(
            "8.1",
            "3.3",
            "Already in use: functionCallIdentifier was used for another request",
        );
        return respond(es2plus_answer(Err(reused)));
    }
    let answer = es2plus_answer(books.execute(function, &body, now));
    let call = Call {
        function,
        body,
        answer: answer.clone(),
        seen: 1,
    };
    books.calls.insert(call_id, call);
    respond(answer)
}

async fn download_order(State(sim): State<Sim>, body: Bytes) -> Response {
    let now = sim_line::utc_now();
    call_in(&mut sim.lock().books, Function::DownloadOrder, &body, &now)
}

async fn confirm_order(State(sim): State<Sim>, body: Bytes) -> Response {
    let now = sim_line::utc_now();
    call_in(&mut sim.lock().books, Function::ConfirmOrder, &body, &now)
}

async fn cancel_order(State(sim): State<Sim>, body: Bytes) -> Response {
    let now = sim_line::utc_now();
    call_in(&mut sim.lock().books, Function::CancelOrder, &body, &now)
}

async fn release_profile(State(sim): State<Sim>, body: Bytes) -> Response {
    let now = sim_line::utc_now();
    call_in(&mut sim.lock().books, Function::ReleaseProfile, &body, &now)
}

/// `gsma/rsp/v2.<minor>.<patch>`.
fn speaks_the_protocol(value: &str) -> bool {
    value
        .strip_prefix(ADMIN_PROTOCOL_PREFIX)
        .is_some_and(|rest| {
            let parts: Vec<&str> = rest.split('.').collect();
            parts.len() == 2 && parts.iter().all(|p| digits(p))
        })
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The token, then the protocol header (see the module docs).
async fn authenticate(request: Request, next: Next) -> Response {
    let headers = request.headers();
    if bearer_token(headers).is_none() {
        let mut response = http_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "A bearer token is required",
        );
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    let protocol = headers
        .get("x-admin-protocol")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !speaks_the_protocol(protocol) {
        return http_error(
            StatusCode::BAD_REQUEST,
            "admin_protocol",
            "X-Admin-Protocol must be gsma/rsp/v2.x.y",
        );
    }
    next.run(request).await
}

async fn health() -> Response {
    axum::Json(json!({ "status": "UP" })).into_response()
}

async fn unknown() -> Response {
    http_error(StatusCode::NOT_FOUND, "not_found", "Not found")
}

async fn method_not_allowed() -> Response {
    http_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "Method not allowed",
    )
}

// ---- the device side ----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DeviceDownload {
    activation_code: String,
    confirmation_code: Option<String>,
    eid: Option<String>,
}

fn device_download_in(books: &mut Books, body: &[u8], now: &str) -> Response {
    let request: DeviceDownload = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(e) => {
            return http_error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("Invalid body: {e}"),
            );
        }
    };
    let Ok(code) = ActivationCode::parse(&request.activation_code) else {
        return http_error(
            StatusCode::BAD_REQUEST,
            "activation_code_invalid",
            "Not an SGP.22 activation code",
        );
    };
    if !code
        .smdp_address()
        .eq_ignore_ascii_case(&books.smdp_address)
    {
        return http_error(
            StatusCode::NOT_FOUND,
            "smdp_address_mismatch",
            format!("This SM-DP+ is {}", books.smdp_address),
        );
    }
    let found = books.profiles.iter_mut().find(|p| {
        p.order
            .as_ref()
            .is_some_and(|o| o.matching_id.as_deref() == Some(code.matching_id()))
    });
    let Some(profile) = found else {
        return http_error(
            StatusCode::NOT_FOUND,
            "matching_id_unknown",
            "No order has this matching ID",
        );
    };
    let order = profile.order.as_mut().expect("found by its order");
    let refusal = match order.state {
        OrderState::Released => None,
        OrderState::Reserved | OrderState::Confirmed => Some((
            "profile_not_released",
            "The profile is not released for download",
        )),
        OrderState::Downloaded => Some(("profile_downloaded", "The profile was downloaded")),
        OrderState::Cancelled => Some(("order_cancelled", "The order was cancelled")),
    };
    if let Some((error, message)) = refusal {
        return http_error(StatusCode::CONFLICT, error, message);
    }
    if let (Some(device), Some(ordered)) = (&request.eid, &order.eid)
        && device != ordered
    {
        return http_error(
            StatusCode::FORBIDDEN,
            "eid_mismatch",
            "The order is for another eUICC",
        );
    }
    if let Some(expected) = order.confirmation_code {
        match &request.confirmation_code {
            None => {
                return http_error(
                    StatusCode::FORBIDDEN,
                    "confirmation_code_required",
                    "The order needs a confirmation code",
                );
            }
            Some(given) if digest(given) != expected => {
                order.wrong_confirmation_codes += 1;
                return http_error(
                    StatusCode::FORBIDDEN,
                    "confirmation_code_mismatch",
                    "Wrong confirmation code",
                );
            }
            Some(_) => {}
        }
    }
    order.state = OrderState::Downloaded;
    order.downloaded_at = Some(now.to_owned());
    if order.eid.is_none() {
        order.eid = request.eid;
    }
    let body = json!({
        "iccid": profile.iccid,
        "profileType": profile.profile_type,
        "eid": order.eid,
        "state": order.state,
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

async fn device_download(State(sim): State<Sim>, body: Bytes) -> Response {
    let now = sim_line::utc_now();
    device_download_in(&mut sim.lock().books, &body, &now)
}

// ---- faults ----

/// What `/_sim/faults` sets (see the module docs).
#[derive(Debug, Clone, Copy, Default, Serialize)]
struct Faults {
    latency_ms: u64,
    fail_next: u32,
    timeout_next: u32,
    outage: bool,
    lose_response_next: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultsPatch {
    latency_ms: Option<u64>,
    fail_next: Option<u32>,
    timeout_next: Option<u32>,
    outage: Option<bool>,
    lose_response_next: Option<u32>,
}

impl Faults {
    fn patch(&mut self, patch: FaultsPatch) {
        if let Some(v) = patch.latency_ms {
            self.latency_ms = v;
        }
        if let Some(v) = patch.fail_next {
            self.fail_next = v;
        }
        if let Some(v) = patch.timeout_next {
            self.timeout_next = v;
        }
        if let Some(v) = patch.outage {
            self.outage = v;
        }
        if let Some(v) = patch.lose_response_next {
            self.lose_response_next = v;
        }
    }
}

// ---- the simulator ----

#[derive(Debug)]
struct SimState {
    books: Books,
    faults: Faults,
}

#[derive(Debug, Clone)]
struct Sim(Arc<Mutex<SimState>>);

impl Sim {
    fn new(options: &SmdpSimOptions) -> Self {
        Self(Arc::new(Mutex::new(SimState {
            books: Books::new(options),
            faults: Faults::default(),
        })))
    }

    /// The state; a panic elsewhere while holding the lock leaves it usable.
    fn lock(&self) -> MutexGuard<'_, SimState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn outage_gate(State(sim): State<Sim>, request: Request, next: Next) -> Response {
    if !sim.lock().faults.outage {
        return next.run(request).await;
    }
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        "SM-DP+ temporarily unavailable\n",
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
    response
}

/// Latency, hangs and failures before a call reaches the SM-DP+ (see the module docs).
async fn api_faults(State(sim): State<Sim>, request: Request, next: Next) -> Response {
    let latency = sim.lock().faults.latency_ms;
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
        return http_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Internal error",
        );
    }
    next.run(request).await
}

/// Executes the call, then, while `lose_response_next` lasts, loses a 200 answer.
async fn lose_answer(State(sim): State<Sim>, request: Request, next: Next) -> Response {
    let switch: Option<HangUp> = sim_line::hang_up_switch(&request);
    let response = next.run(request).await;
    if let Some(switch) = switch
        && response.status() == StatusCode::OK
        && sim_line::take(&mut sim.lock().faults.lose_response_next)
    {
        switch.now();
    }
    response
}

fn faults_answer(faults: &Faults) -> Response {
    axum::Json(json!(faults)).into_response()
}

async fn get_faults(State(sim): State<Sim>) -> Response {
    faults_answer(&sim.lock().faults)
}

async fn set_faults(State(sim): State<Sim>, body: Bytes) -> Response {
    let patch: FaultsPatch = match serde_json::from_slice(&body) {
        Ok(patch) => patch,
        Err(e) => {
            return http_error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("Invalid faults: {e}"),
            );
        }
    };
    let faults = &mut sim.lock().faults;
    faults.patch(patch);
    faults_answer(faults)
}

async fn clear_faults(State(sim): State<Sim>) -> Response {
    let faults = &mut sim.lock().faults;
    *faults = Faults::default();
    faults_answer(faults)
}

async fn ledger(State(sim): State<Sim>) -> Response {
    axum::Json(sim.lock().books.ledger()).into_response()
}

fn router(sim: Sim) -> Router {
    let base = "/gsma/rsp2/es2plus";
    let es2plus = Router::new()
        .route(&format!("{base}/downloadOrder"), post(download_order))
        .route(&format!("{base}/confirmOrder"), post(confirm_order))
        .route(&format!("{base}/cancelOrder"), post(cancel_order))
        .route(&format!("{base}/releaseProfile"), post(release_profile))
        .route_layer(middleware::from_fn(authenticate))
        .route_layer(middleware::from_fn_with_state(sim.clone(), lose_answer))
        .route_layer(middleware::from_fn_with_state(sim.clone(), api_faults));
    let served = es2plus
        .route("/healthz", get(health))
        .fallback(unknown)
        .layer(middleware::from_fn_with_state(sim.clone(), outage_gate));
    let controls = Router::new()
        .route(
            "/_sim/faults",
            get(get_faults).post(set_faults).delete(clear_faults),
        )
        .route("/_sim/ledger", get(ledger))
        .route("/_sim/download", post(device_download));
    served
        .merge(controls)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(sim)
}

/// [`serve_with`] the default options: the pool of [`SmdpSimOptions::default`] at
/// [`DEFAULT_SMDP_ADDRESS`].
///
/// # Errors
/// The address cannot be bound.
pub async fn serve(
    listen: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_bound: impl FnOnce(SocketAddr),
) -> io::Result<()> {
    serve_with(listen, SmdpSimOptions::default(), shutdown, on_bound).await
}

/// Binds the simulator and serves it until `shutdown`; tells `on_bound` the bound address
/// first.
///
/// # Errors
/// The SM-DP+ address is no host name an activation code can carry, a profile type is empty,
/// or the address cannot be bound.
pub async fn serve_with(
    listen: SocketAddr,
    options: SmdpSimOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_bound: impl FnOnce(SocketAddr),
) -> io::Result<()> {
    if let Err(e) = ActivationCode::new(&options.smdp_address, "A", false) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, e));
    }
    if options.profile_types.iter().any(String::is_empty) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a profile type is empty",
        ));
    }
    let sim = Sim::new(&options);
    sim_line::serve("SM-DP+", listen, router(sim), shutdown, on_bound).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn books(per_type: usize) -> Books {
        Books::new(&SmdpSimOptions {
            profiles_per_type: per_type,
            profile_types: vec!["A".into(), "B".into()],
            ..SmdpSimOptions::default()
        })
    }

    fn call(books: &mut Books, function: Function, body: Value) -> Value {
        let response = call_in(books, function, body.to_string().as_bytes(), "now");
        assert_eq!(response.status(), StatusCode::OK);
        let call_id = body["header"]["functionCallIdentifier"].as_str().unwrap();
        books.calls[call_id].answer.clone()
    }

    fn header(id: &str) -> Value {
        json!({"functionRequesterIdentifier": "test", "functionCallIdentifier": id})
    }

    #[test]
    fn the_pool_has_luhn_iccids_per_type() {
        let books = books(2);
        assert_eq!(books.profiles.len(), 4);
        assert_eq!(books.profiles[2].profile_type, "B");
        for profile in &books.profiles {
            assert_eq!(profile.iccid.len(), 19);
            assert!(profile.iccid.starts_with("8945"));
            let (body, check) = profile.iccid.split_at(18);
            assert_eq!(sim_line::luhn_digit(body).to_string(), check);
        }
    }

    #[test]
    fn matching_ids_are_four_groups_of_four() {
        let id = random_matching_id();
        assert_eq!(id.len(), 19);
        let groups: Vec<&str> = id.split('-').collect();
        assert_eq!(groups.len(), 4);
        assert!(groups.iter().all(|g| g.len() == 4));
        assert!(valid_matching_id(&id));
        assert_ne!(id, random_matching_id());
    }

    #[test]
    fn the_protocol_header_is_major_version_2() {
        assert!(speaks_the_protocol("gsma/rsp/v2.1.0"));
        assert!(speaks_the_protocol("gsma/rsp/v2.5.12"));
        for bad in ["", "gsma/rsp/v3.0.0", "gsma/rsp/v2.1", "gsma/rsp/v2.x.0"] {
            assert!(!speaks_the_protocol(bad), "{bad}");
        }
    }

    #[test]
    fn a_profile_type_picks_from_its_own_pool() {
        let mut books = books(1);
        let body = json!({"header": header("c1"), "profileType": "B"});
        let answer = call(&mut books, Function::DownloadOrder, body);
        assert_eq!(answer["iccid"], books.profiles[1].iccid.as_str());
        let body = json!({"header": header("c2"), "profileType": "B"});
        let answer = call(&mut books, Function::DownloadOrder, body);
        let data = &answer["header"]["functionExecutionStatus"]["statusCodeData"];
        assert_eq!(
            (data["subjectCode"].as_str(), data["reasonCode"].as_str()),
            (Some("8.2.5"), Some("3.7"))
        );
        let body = json!({"header": header("c3"), "profileType": "C"});
        let answer = call(&mut books, Function::DownloadOrder, body);
        let data = &answer["header"]["functionExecutionStatus"]["statusCodeData"];
        assert_eq!(data["reasonCode"], "3.9");
    }

    #[test]
    fn serde_errors_sort_into_missing_and_invalid() {
        let mut books = books(1);
        let answer = call(
            &mut books,
            Function::ConfirmOrder,
            json!({"header": header("c1"), "releaseFlag": true}),
        );
        let data = &answer["header"]["functionExecutionStatus"]["statusCodeData"];
        assert_eq!(
            (data["subjectCode"].as_str(), data["reasonCode"].as_str()),
            (Some("8.1"), Some("2.2"))
        );
        let answer = call(
            &mut books,
            Function::ReleaseProfile,
            json!({"header": header("c2"), "iccid": 42}),
        );
        let data = &answer["header"]["functionExecutionStatus"]["statusCodeData"];
        assert_eq!(
            (data["subjectCode"].as_str(), data["reasonCode"].as_str()),
            (Some("8.1"), Some("2.1"))
        );
    }
}
