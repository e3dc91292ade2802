//! The porting step: a port-in line's number brought from the customer's current operator,
//! after the SIMs and before the subscriptions are created in TCM (the subscription is made
//! with the number once it is ours).
//!
//! Per port-in item the order submits a request to the clearing house (`SubmitPort`), which
//! gives it an id and passes it to the losing operator; the losing operator answers within 48
//! hours (accepted with the port date, or rejected with a reason); on the port date the
//! number moves (02:00 Danish time in Denmark) and the port is completed. A rejection holds
//! the item and the order: the customer corrects what the reason names (the ICC, the
//! operator, the PAC, the date) and the port is submitted again as a new attempt, whose
//! answers are the only ones that count from then on. An answer that does not come in time
//! (48 hours to answer, a day after the port date to complete) holds the order for an agent.
//!
//! Orders without port-ins have no porting step, and orders placed before it existed skip it.

use serde::{Deserialize, Serialize};
use tcom_schemas::order::{CorrectPortIn, OrderState};
use tcom_schemas::porting::PortingEventPayload;
use time::{Date, Duration, OffsetDateTime, Weekday};

use super::fulfilment::{activate_or_complete, characteristic, set_characteristic};
use super::{Action, Order, OrderItem, StepName, StepState};
use crate::domain::basket::is_valid_iccid;
use crate::domain::identity::danish_date;
use crate::domain::porting::{Pac, Rejection, check_port_date, correctable_fields};
use crate::domain::violation::{Violation, Violations};

/// How long after its port date's execution a port may take to be reported completed before
/// an agent is asked to look.
pub const PORT_COMPLETION_GRACE_MS: i64 = 24 * 60 * 60 * 1000;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Where an item's port stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PortStatus {
    /// Asked of the connector; the clearing house has not given it an id yet.
    Submitting,
    /// With the losing operator, who answers within 48 hours.
    Submitted,
    /// The losing operator agreed; the number moves on the port date.
    Accepted,
    /// Refused: the customer corrects the request (or an agent looks).
    Rejected,
    /// The number is ours.
    Completed,
}

impl PortStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Submitting => "submitting",
            Self::Submitted => "submitted",
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::Completed => "completed",
        }
    }
}

/// A port-in item's port, as the order knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRequest {
    /// 1 for the first submission, one more per correction.
    pub attempt: u32,
    pub status: PortStatus,
    /// The clearing house's id of the current attempt.
    pub porting_id: Option<String>,
    /// `YYYY-MM-DD`, as requested and then as accepted.
    pub port_date: String,
    /// When an answer is overdue (ms since the epoch).
    pub deadline: Option<i64>,
    /// The rejection's code, while rejected.
    pub rejection: Option<String>,
}

/// Why a correction is not taken.
#[derive(Debug, Clone, PartialEq)]
pub enum CorrectionRefusal {
    /// No port-in item with that id.
    UnknownItem,
    /// The item's port is not rejected: nothing to correct.
    NotRejected { status: String },
    /// The corrected fields break the rules.
    Invalid(Vec<Violation>),
}

fn is_port_in(item: &OrderItem) -> bool {
    characteristic(item, "numberType") == Some("portIn")
}

/// Whether the order has port-ins to wait for (new orders with port-in lines get the step).
pub(super) fn needs_porting(order: &Order) -> bool {
    order.items.iter().any(is_port_in)
}

/// The SIMs are there: the numbers are ported first (where the order has that step), then the
/// subscriptions created.
pub(super) fn port_or_activate(order: &mut Order, now: i64, actions: &mut Vec<Action>) {
    let has_step = order.steps.iter().any(|s| s.name == StepName::Porting);
    if !has_step || order.step(StepName::Porting).state == StepState::Done {
        activate_or_complete(order, now, actions);
        return;
    }
    if order.step(StepName::Porting).state != StepState::Waiting {
        return;
    }
    let country = order.country.clone().unwrap_or_else(|| "DK".to_owned());
    let mut submitted = false;
    for item in order
        .items
        .iter_mut()
        .filter(|i| !i.state.is_final() && is_port_in(i) && i.port.is_none())
    {
        let date = requested_port_date(&country, desired_port_date(item), now);
        item.port = Some(PortRequest {
            attempt: 1,
            status: PortStatus::Submitting,
            porting_id: None,
            port_date: date.to_string(),
            deadline: None,
            rejection: None,
        });
        set_characteristic(item, "portStatus", PortStatus::Submitting.as_str());
        actions.push(submit(item));
        submitted = true;
    }
    if !submitted {
        order.set_step(StepName::Porting, StepState::Done, None);
        activate_or_complete(order, now, actions);
        return;
    }
    // No deadline until the clearing house has the request: while it is down the order waits
    // (the connector says why), as for TCM.
    order.set_step(StepName::Porting, StepState::InProgress, None);
}

fn desired_port_date(item: &OrderItem) -> Option<i32> {
    characteristic(item, "desiredPortDate").and_then(|d| d.parse().ok())
}

fn date_of_epoch_day(day: i32) -> Option<Date> {
    Date::from_julian_day(
        Date::from_calendar_date(1970, time::Month::January, 1)
            .ok()?
            .to_julian_day()
            + day,
    )
    .ok()
}

/// The date a port is requested for: the customer's, while the rules still allow it, else
/// the earliest the rules allow. Denmark: a working day from the next one after today's
/// Danish date (see [`crate::domain::porting`]). Elsewhere (the UK ports within a working
/// day): the customer's date when it is a weekday after today, else the next weekday.
pub fn requested_port_date(country: &str, desired_day: Option<i32>, now_ms: i64) -> Date {
    let now = OffsetDateTime::from_unix_timestamp(now_ms.div_euclid(1000))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let desired = desired_day.and_then(date_of_epoch_day);
    if country == "DK" {
        return match desired {
            Some(date) if check_port_date(date, now).is_ok() => date,
            _ => crate::domain::porting::earliest_port_date(now),
        };
    }
    let today = now.date();
    match desired {
        Some(date) if date > today && is_weekday(date) => date,
        _ => next_weekday_after(today),
    }
}

fn is_weekday(date: Date) -> bool {
    !matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday)
}

fn next_weekday_after(date: Date) -> Date {
    let mut next = date.saturating_add(Duration::days(1));
    while !is_weekday(next) {
        next = next.saturating_add(Duration::days(1));
    }
    next
}

/// The request for the item's current attempt, from its characteristics.
fn submit(item: &OrderItem) -> Action {
    let port = item.port.as_ref().expect("submitted items have a port");
    let text = |name: &str| characteristic(item, name).map(str::to_owned);
    Action::SubmitPort {
        item_id: item.id.clone(),
        attempt: port.attempt,
        msisdn: text("MSISDN").unwrap_or_default(),
        current_operator: text("currentOperator").unwrap_or_default(),
        sim_icc: text("currentSimIcc"),
        pac: text("pac"),
        requested_date: port.port_date.clone(),
    }
}

/// The earliest deadline of the order's live ports, as the step's.
fn refresh_deadline(order: &mut Order) {
    let deadline = order
        .items
        .iter()
        .filter(|i| !i.state.is_final())
        .filter_map(|i| i.port.as_ref()?.deadline)
        .min();
    order.step_mut(StepName::Porting).deadline = deadline;
}

/// Holds the item and the order for the customer (a correctable rejection) or an agent.
fn hold(order: &mut Order, item_index: usize, reason: String) {
    order.items[item_index].state = OrderState::Held;
    order.state = OrderState::Held;
    order.state_reason = Some(reason.clone());
    order.step_mut(StepName::Porting).detail = Some(reason);
}

/// The item whose current attempt the report is about, by the clearing house's id.
fn reported_item(order: &Order, item_id: &str, porting_id: &str) -> Option<usize> {
    order.items.iter().position(|i| {
        i.id == item_id
            && !i.state.is_final()
            && i.port
                .as_ref()
                .is_some_and(|p| p.porting_id.as_deref() == Some(porting_id))
    })
}

/// The clearing house's (or the connector's) report about an item's port.
pub(super) fn on_porting(
    order: &mut Order,
    report: &PortingEventPayload,
    now: i64,
    actions: &mut Vec<Action>,
) {
    let porting = order
        .steps
        .iter()
        .any(|s| s.name == StepName::Porting && s.state == StepState::InProgress);
    if !porting || order.state.is_final() {
        return;
    }
    match report {
        PortingEventPayload::PortSubmitted(submitted) => {
            let Some(item) = order.items.iter_mut().find(|i| i.id == submitted.item_id) else {
                return;
            };
            let Some(port) = item.port.as_mut() else {
                return;
            };
            let attempt = u32::try_from(submitted.attempt).unwrap_or_default();
            if port.attempt != attempt || port.status != PortStatus::Submitting {
                return;
            }
            port.status = PortStatus::Submitted;
            port.porting_id = Some(submitted.porting_id.clone());
            port.deadline = Some(submitted.answer_due_at);
            set_characteristic(item, "portingId", &submitted.porting_id);
            set_characteristic(item, "portStatus", PortStatus::Submitted.as_str());
            order.step_mut(StepName::Porting).detail = None;
            refresh_deadline(order);
        }
        PortingEventPayload::PortAccepted(accepted) => {
            let Some(index) = reported_item(order, &accepted.item_id, &accepted.porting_id) else {
                return;
            };
            let item = &mut order.items[index];
            let port = item.port.as_mut().expect("reported items have a port");
            if port.status != PortStatus::Submitted {
                return;
            }
            port.status = PortStatus::Accepted;
            port.port_date.clone_from(&accepted.port_date);
            port.deadline = Some(accepted.executes_at + PORT_COMPLETION_GRACE_MS);
            set_characteristic(item, "portStatus", PortStatus::Accepted.as_str());
            set_characteristic(item, "portDate", &accepted.port_date);
            refresh_deadline(order);
        }
        PortingEventPayload::PortRejected(rejected) => {
            // A request refused before the clearing house gave it an id is about the attempt
            // being submitted.
            let index = if rejected.porting_id.is_empty() {
                order.items.iter().position(|i| {
                    i.id == rejected.item_id
                        && i.port
                            .as_ref()
                            .is_some_and(|p| p.status == PortStatus::Submitting)
                })
            } else {
                reported_item(order, &rejected.item_id, &rejected.porting_id)
            };
            let Some(index) = index else {
                return;
            };
            let item = &mut order.items[index];
            let port = item.port.as_mut().expect("reported items have a port");
            if matches!(port.status, PortStatus::Rejected | PortStatus::Completed) {
                return;
            }
            port.status = PortStatus::Rejected;
            port.deadline = None;
            port.rejection = Some(rejected.code.clone());
            set_characteristic(item, "portStatus", PortStatus::Rejected.as_str());
            set_characteristic(item, "portRejection", &rejected.code);
            let fields = correctable(&rejected.code, &rejected.reason);
            // For the storefront's correction form: which fields to offer.
            set_characteristic(item, "portCorrectable", &fields.join(","));
            let next = if fields.is_empty() {
                "an agent looks".to_owned()
            } else {
                format!("the customer may correct {}", fields.join(", "))
            };
            let reason = format!(
                "the port of item {} was rejected: {} ({}); {next}",
                rejected.item_id, rejected.code, rejected.reason
            );
            hold(order, index, reason);
            refresh_deadline(order);
        }
        PortingEventPayload::PortCompleted(completed) => {
            let Some(index) = reported_item(order, &completed.item_id, &completed.porting_id)
            else {
                return;
            };
            let item = &mut order.items[index];
            let port = item.port.as_mut().expect("reported items have a port");
            if !matches!(port.status, PortStatus::Submitted | PortStatus::Accepted) {
                return;
            }
            port.status = PortStatus::Completed;
            port.deadline = None;
            set_characteristic(item, "portStatus", PortStatus::Completed.as_str());
            let day = danish_date(completed.completed_at.div_euclid(1000)).to_string();
            set_characteristic(item, "portedOn", &day);
            refresh_deadline(order);
            let pending = order.items.iter().any(|i| {
                !i.state.is_final()
                    && i.port
                        .as_ref()
                        .is_some_and(|p| p.status != PortStatus::Completed)
            });
            if !pending {
                order.set_step(StepName::Porting, StepState::Done, None);
                order.step_mut(StepName::Porting).detail = None;
                activate_or_complete(order, now, actions);
            }
        }
        PortingEventPayload::PortingDelayed(delayed) => {
            order.step_mut(StepName::Porting).detail = Some(delayed.reason.clone());
        }
    }
}

/// What the customer can correct after a rejection with the clearing house's `code`, named
/// as the correction request (`POST …/port-in`) names them; empty when only an agent can
/// help (an unknown code among them, and the owner, who must be verified again).
pub fn correctable(code: &str, reason: &str) -> Vec<&'static str> {
    let rejection = match code {
        // A PAC refused: the customer asks the losing provider for a new one.
        "pac_invalid" | "pac_expired" => return vec!["pac"],
        "wrong_icc" => Rejection::WrongIcc,
        "owner_mismatch" => Rejection::OwnerMismatch,
        "number_not_with_operator" => Rejection::NumberNotWithOperator,
        "port_date_unavailable" => Rejection::PortDateUnavailable,
        _ => Rejection::Other {
            reason: reason.to_owned(),
        },
    };
    // The rules name what is wrong; the request names what can be sent. A mistyped number
    // or another owner make a new order (or an agent), not a correction.
    correctable_fields(&rejection)
        .iter()
        .filter_map(|field| match *field {
            "requested_date" => Some("desired_port_date"),
            "sim_icc" | "current_operator" => Some(*field),
            _ => None,
        })
        .collect()
}

/// Ports whose answer is overdue hold the order for an agent.
pub(super) fn on_deadline(order: &mut Order, now: i64) {
    let overdue: Vec<usize> = order
        .items
        .iter()
        .enumerate()
        .filter(|(_, i)| {
            !i.state.is_final()
                && i.port
                    .as_ref()
                    .and_then(|p| p.deadline)
                    .is_some_and(|d| d <= now)
        })
        .map(|(n, _)| n)
        .collect();
    for index in overdue {
        let item = &mut order.items[index];
        let port = item.port.as_mut().expect("overdue items have a port");
        port.deadline = None;
        let reason = match port.status {
            PortStatus::Accepted => format!(
                "the port of item {} was not completed on its date {}",
                item.id, port.port_date
            ),
            _ => format!(
                "the losing operator did not answer the port of item {} within 48 hours",
                item.id
            ),
        };
        hold(order, index, reason);
    }
    refresh_deadline(order);
}

/// The customer corrects a rejected port: the request is checked, the item's details
/// changed, and the port submitted again as the next attempt.
///
/// # Errors
/// [`CorrectionRefusal`]: no such port-in item, its port is not rejected, or the corrected
/// details break the rules (each violation with its field).
pub fn correct_port_in(
    order: &mut Order,
    correction: &CorrectPortIn,
    now: i64,
    actions: &mut Vec<Action>,
) -> Result<(), CorrectionRefusal> {
    let country = order.country.clone().unwrap_or_else(|| "DK".to_owned());
    let Some(index) = order
        .items
        .iter()
        .position(|i| i.id == correction.item_id && is_port_in(i))
    else {
        return Err(CorrectionRefusal::UnknownItem);
    };
    let status = order.items[index].port.as_ref().map(|p| p.status);
    if status != Some(PortStatus::Rejected) || order.state.is_final() {
        return Err(CorrectionRefusal::NotRejected {
            status: status
                .map_or("not submitted", PortStatus::as_str)
                .to_owned(),
        });
    }
    let violations = check_correction(&country, correction, now);
    if !violations.is_empty() {
        return Err(CorrectionRefusal::Invalid(violations));
    }
    let item = &mut order.items[index];
    if let Some(operator) = &correction.current_operator {
        set_characteristic(item, "currentOperator", operator.trim());
    }
    if let Some(icc) = &correction.sim_icc {
        set_characteristic(item, "currentSimIcc", icc);
    }
    if let Some(pac) = correction.pac.as_deref().and_then(|p| Pac::parse(p).ok()) {
        set_characteristic(item, "pac", pac.as_str());
    }
    if let Some(day) = correction.desired_port_date {
        set_characteristic(item, "desiredPortDate", &day.to_string());
    }
    let date = requested_port_date(&country, desired_port_date(item), now);
    let port = item.port.as_mut().expect("a rejected item has a port");
    port.attempt += 1;
    port.status = PortStatus::Submitting;
    port.porting_id = None;
    port.port_date = date.to_string();
    port.deadline = None;
    port.rejection = None;
    item.state = OrderState::InProgress;
    set_characteristic(item, "portStatus", PortStatus::Submitting.as_str());
    item.characteristics
        .retain(|(n, _)| n != "portRejection" && n != "portCorrectable");
    actions.push(submit(item));
    // The order goes on unless another item is still held.
    if order.state == OrderState::Held && !order.items.iter().any(|i| i.state == OrderState::Held) {
        order.state = OrderState::InProgress;
        order.state_reason = None;
    }
    order.step_mut(StepName::Porting).detail = None;
    Ok(())
}

fn check_correction(country: &str, correction: &CorrectPortIn, now: i64) -> Vec<Violation> {
    let mut v = Violations::default();
    let nothing = correction.current_operator.is_none()
        && correction.sim_icc.is_none()
        && correction.pac.is_none()
        && correction.desired_port_date.is_none();
    if nothing {
        v.push(
            "nothing_to_correct",
            "",
            "give at least one of current_operator, sim_icc, pac, desired_port_date",
        );
    }
    if let Some(operator) = &correction.current_operator {
        v.check(
            !operator.trim().is_empty() && operator.len() <= 100,
            "invalid_current_operator",
            "current_operator",
            || "name the operator the number comes from (at most 100 characters)".to_owned(),
        );
    }
    if let Some(icc) = &correction.sim_icc {
        v.check(is_valid_iccid(icc), "invalid_sim_icc", "sim_icc", || {
            "an ICCID has 19 or 20 digits, starts with 89 and ends with a Luhn check digit"
                .to_owned()
        });
    }
    if let Some(pac) = &correction.pac {
        if country == "GB" {
            if let Err(e) = Pac::parse(pac) {
                v.push(e.code(), "pac", e.to_string());
            }
        } else {
            v.push(
                "pac_not_used",
                "pac",
                format!("ports in {country} do not use a PAC; leave it out"),
            );
        }
    }
    if let Some(day) = correction.desired_port_date {
        let today = now.div_euclid(DAY_MS);
        let allowed = i64::from(day) > today
            && i64::from(day) <= today + crate::domain::porting::MAX_DAYS_AHEAD;
        v.check(allowed, "invalid_port_date", "desired_port_date", || {
            format!(
                "a port date is from tomorrow to {} days ahead",
                crate::domain::porting::MAX_DAYS_AHEAD
            )
        });
    }
    v.into_vec()
}
