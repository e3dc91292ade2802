//! Fulfilment, once the money is taken: the SIMs first (eSIM profiles from the SM-DP+, pSIM
//! shipments from the logistics house, one SIM for the line and one per data-sharing card),
//! then the port-ins (see [`super::port_in`]), then the subscriptions in TCM with those
//! ICCIDs, then completion.
//!
//! An item is delivered when TCM has its subscription and, for a pSIM, the shipment is
//! delivered; the order is `completed` when every live item is (`partial` when some failed
//! earlier). Provider outages never fail a paid order: the step waits, its detail says why.
//! What a provider refuses, or a SIM that comes back to the sender, holds the order for an
//! agent; nothing is undone, the money being captured.
//!
//! Orders placed before a step existed skip it: without `sim_delivery` the subscriptions are
//! created at once, without `activation` the order completes at the capture.

use serde::{Deserialize, Serialize};
use tcom_schemas::order::OrderState;
use tcom_schemas::sim::SimEventPayload;
use tcom_schemas::tcm::TcmEventPayload;

use super::port_in::port_or_activate;
use super::{Action, Order, OrderItem, StepName, StepState};
use crate::domain::identity::danish_date;

/// A SIM bound to an order item: the line's own first, then the data-sharing cards'.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimCard {
    pub iccid: String,
    /// eSIM: the SGP.22 activation code, sealed with the customer's data key (`pd1.…`).
    #[serde(default)]
    pub activation_code_sealed: Option<String>,
    /// eSIM: the confirmation code, when the profile needs one, sealed apart.
    #[serde(default)]
    pub confirmation_code_sealed: Option<String>,
}

/// A pSIM item's shipment as the logistics house last reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipment {
    pub shipment_id: String,
    pub tracking_number: String,
    /// `created`, `shipped`, `delivered` or `returned`.
    pub status: String,
    /// The newest tracking event applied (older or repeated ones are ignored).
    pub sequence: i64,
}

/// The SIMs an item needs: its own and one per data-sharing card. (Every add-on the catalog
/// sells today is a data-sharing card.)
pub fn sims_needed(item: &OrderItem) -> u32 {
    1 + item.add_ons.iter().map(|a| a.quantity).sum::<u32>()
}

/// The item's data-sharing cards of the other SIM type than the line's (a card takes the
/// line's type unless the shopper chose another).
fn cards_of_the_other_type(item: &OrderItem) -> u32 {
    let line = characteristic(item, "simType");
    item.add_ons
        .iter()
        .filter(|a| characteristic(a, "simType").is_some_and(|t| Some(t) != line))
        .map(|a| a.quantity)
        .sum()
}

/// What to ask for an item's SIMs: the line's SIM with the cards of its type, and the cards
/// of the other type apart (eSIM profiles and a shipment are different providers).
fn sim_requests(item: &OrderItem) -> Vec<Action> {
    let psim = is_psim(item);
    let other = cards_of_the_other_type(item);
    let mut asked = vec![Action::DeliverSims {
        item_id: item.id.clone(),
        psim,
        sims: sims_needed(item) - other,
        line: true,
    }];
    if other > 0 {
        asked.push(Action::DeliverSims {
            item_id: item.id.clone(),
            psim: !psim,
            sims: other,
            line: false,
        });
    }
    asked
}

pub(super) fn characteristic<'a>(item: &'a OrderItem, name: &str) -> Option<&'a str> {
    item.characteristics
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

pub(super) fn set_characteristic(item: &mut OrderItem, name: &str, value: &str) {
    match item.characteristics.iter_mut().find(|(n, _)| n == name) {
        Some((_, v)) => value.clone_into(v),
        None => item
            .characteristics
            .push((name.to_owned(), value.to_owned())),
    }
}

fn is_psim(item: &OrderItem) -> bool {
    characteristic(item, "simType") == Some("PSIM")
}

/// The binding's last day: the order's Danish date plus the binding months (the day clamped
/// to the month's length), `None` without a binding.
pub fn binding_end_date(order_date_ms: i64, item: &OrderItem) -> Option<String> {
    let months: u8 = characteristic(item, "bindingMonths")?.parse().ok()?;
    if months == 0 {
        return None;
    }
    let start = danish_date(order_date_ms.div_euclid(1000));
    let total = i32::from(u8::from(start.month()) - 1) + i32::from(months);
    let year = start.year() + total.div_euclid(12);
    let month = time::Month::try_from(u8::try_from(total.rem_euclid(12) + 1).ok()?).ok()?;
    let day = start.day().min(month.length(year));
    let end = time::Date::from_calendar_date(year, month, day).ok()?;
    Some(end.to_string())
}

/// Paid and captured: the SIMs are obtained first (where the order has that step), then the
/// subscriptions created.
pub(super) fn deliver_sims_or_activate(order: &mut Order, now: i64, actions: &mut Vec<Action>) {
    // The money is taken: the capture step is done, whoever captured (an order held for an
    // unconfirmed capture goes on).
    order.set_step(StepName::Capture, StepState::Done, None);
    if order.state == OrderState::Held {
        order.state = OrderState::InProgress;
        order.state_reason = None;
    }
    if !order.steps.iter().any(|s| s.name == StepName::SimDelivery) {
        port_or_activate(order, now, actions);
        return;
    }
    let waiting: Vec<Action> = order
        .items
        .iter()
        .filter(|i| !i.state.is_final() && i.sims.is_empty())
        .flat_map(sim_requests)
        .collect();
    if waiting.is_empty() {
        sims_obtained(order, now, actions);
        return;
    }
    actions.extend(waiting);
    // No deadline: while a provider is down the order waits (the connector says why).
    order.set_step(StepName::SimDelivery, StepState::InProgress, None);
}

/// Whether a live item still waits for some of its SIMs.
fn sims_missing(order: &Order) -> bool {
    order
        .items
        .iter()
        .any(|i| !i.state.is_final() && i.sims.len() < sims_needed(i) as usize)
}

/// Whether a live item's parcel has not arrived yet.
fn parcels_on_the_way(order: &Order) -> bool {
    order.items.iter().any(|i| {
        !i.state.is_final() && i.shipment.as_ref().is_some_and(|s| s.status != "delivered")
    })
}

/// Every live item has its SIMs: the step is done unless pSIMs are still on their way (then it
/// stays in progress until they are delivered), and the subscriptions are created.
fn sims_obtained(order: &mut Order, now: i64, actions: &mut Vec<Action>) {
    if order.step(StepName::SimDelivery).state != StepState::Failed {
        let state = if parcels_on_the_way(order) {
            StepState::InProgress
        } else {
            StepState::Done
        };
        order.set_step(StepName::SimDelivery, state, None);
    }
    port_or_activate(order, now, actions);
}

/// The subscriptions are created in TCM, then the order is complete. (Orders placed before
/// the activation step existed complete at once.)
pub(super) fn activate_or_complete(order: &mut Order, now: i64, actions: &mut Vec<Action>) {
    if !order.steps.iter().any(|s| s.name == StepName::Activation) {
        complete(order, now);
        return;
    }
    if order.step(StepName::Activation).state != StepState::Waiting {
        return;
    }
    let order_date = order.order_date;
    let live: Vec<Action> = order
        .items
        .iter()
        .filter(|i| !i.state.is_final() && i.subscription_id.is_none())
        .map(|item| Action::ActivateSubscription {
            item_id: item.id.clone(),
            plan_code: item.offering_id.clone(),
            msisdn: characteristic(item, "MSISDN")
                .unwrap_or_default()
                .to_owned(),
            sim_type: characteristic(item, "simType")
                .unwrap_or_default()
                .to_owned(),
            iccid: item.sims.first().map(|s| s.iccid.clone()),
            shared_data_sims: item.sims.iter().skip(1).map(|s| s.iccid.clone()).collect(),
            binding_end_date: binding_end_date(order_date, item),
        })
        .collect();
    if live.is_empty() {
        finish_if_delivered(order, now);
        return;
    }
    for item in order.items.iter_mut().filter(|i| !i.state.is_final()) {
        if let Some(end) = binding_end_date(order_date, item) {
            set_characteristic(item, "bindingEndDate", &end);
        }
    }
    actions.extend(live);
    // No deadline: while TCM is down the order waits (the connector says why); it is never
    // failed for TCM's sake, the money being captured.
    order.set_step(StepName::Activation, StepState::InProgress, None);
}

/// An item is delivered when TCM has its subscription and its pSIMs, if any, arrived.
fn delivered(item: &OrderItem) -> bool {
    item.subscription_id.is_some()
        && item
            .shipment
            .as_ref()
            .is_none_or(|s| s.status == "delivered")
}

/// Completes each delivered item, and the order when none is left to deliver.
fn finish_if_delivered(order: &mut Order, now: i64) {
    if order.state == OrderState::Held {
        return;
    }
    for item in order.items.iter_mut().filter(|i| !i.state.is_final()) {
        if delivered(item) {
            item.state = OrderState::Completed;
            for add_on in &mut item.add_ons {
                add_on.state = OrderState::Completed;
            }
        }
    }
    let left = order.items.iter().any(|i| !i.state.is_final());
    if !left {
        complete(order, now);
    }
}

/// SIM logistics or the SM-DP+ answered about an item.
pub(super) fn on_sim(
    order: &mut Order,
    report: &SimEventPayload,
    now: i64,
    actions: &mut Vec<Action>,
) {
    if !order.steps.iter().any(|s| s.name == StepName::SimDelivery) || order.state.is_final() {
        return;
    }
    let step = order.step(StepName::SimDelivery).state;
    match report {
        SimEventPayload::EsimProfilesReady(ready) => {
            let has_esims =
                |i: &OrderItem| i.sims.iter().any(|s| s.activation_code_sealed.is_some());
            let Some(item) = waiting_item(order, &ready.item_id, has_esims) else {
                return;
            };
            let cards = ready.profiles.iter().map(|p| SimCard {
                iccid: p.iccid.clone(),
                activation_code_sealed: Some(p.activation_code_sealed.clone()),
                confirmation_code_sealed: p.confirmation_code_sealed.clone(),
            });
            add_sims(item, !is_psim(item), cards);
            after_sims(order, now, actions);
        }
        SimEventPayload::ShipmentCreated(created) => {
            let Some(item) = waiting_item(order, &created.item_id, |i| i.shipment.is_some()) else {
                return;
            };
            let cards = created.iccids.iter().map(|iccid| SimCard {
                iccid: iccid.clone(),
                activation_code_sealed: None,
                confirmation_code_sealed: None,
            });
            add_sims(item, is_psim(item), cards);
            item.shipment = Some(Shipment {
                shipment_id: created.shipment_id.clone(),
                tracking_number: created.tracking_number.clone(),
                status: "created".to_owned(),
                sequence: 0,
            });
            set_characteristic(item, "shipmentId", &created.shipment_id);
            set_characteristic(item, "trackingNumber", &created.tracking_number);
            set_characteristic(item, "shipmentStatus", "created");
            after_sims(order, now, actions);
        }
        SimEventPayload::ShipmentTracked(tracked) => {
            let Some(item) = order.items.iter_mut().find(|i| i.id == tracked.item_id) else {
                return;
            };
            let Some(shipment) = item.shipment.as_mut() else {
                return;
            };
            if shipment.shipment_id != tracked.shipment_id
                || tracked.sequence <= shipment.sequence
                || shipment.status == "returned"
            {
                return;
            }
            shipment.status.clone_from(&tracked.status);
            shipment.sequence = tracked.sequence;
            set_characteristic(item, "shipmentStatus", &tracked.status);
            match tracked.status.as_str() {
                "returned" => {
                    item.state = OrderState::Held;
                    order.state = OrderState::Held;
                    order.state_reason = Some(format!(
                        "the SIM of item {} came back to the sender",
                        tracked.item_id
                    ));
                    let sim = order.step_mut(StepName::SimDelivery);
                    sim.state = StepState::Failed;
                    sim.detail = Some(format!("shipment {} returned", tracked.shipment_id));
                }
                "delivered" => {
                    let all_arrived = !parcels_on_the_way(order) && !sims_missing(order);
                    if all_arrived && step == StepState::InProgress {
                        order.set_step(StepName::SimDelivery, StepState::Done, None);
                    }
                    finish_if_delivered(order, now);
                }
                _ => {}
            }
        }
        SimEventPayload::SimDeliveryDelayed(delayed) => {
            if step == StepState::InProgress {
                order.step_mut(StepName::SimDelivery).detail = Some(delayed.reason.clone());
            }
        }
        SimEventPayload::SimDeliveryRefused(refused) => {
            if step != StepState::InProgress {
                return;
            }
            // Paid and captured, refused by the provider: an agent looks (nothing undone).
            order.state = OrderState::Held;
            order.state_reason = Some(format!(
                "SIM delivery refused for item {}: {} {}",
                refused.item_id, refused.code, refused.reason
            ));
            let sim = order.step_mut(StepName::SimDelivery);
            sim.state = StepState::Failed;
            sim.detail = Some(format!("{}: {}", refused.code, refused.reason));
        }
    }
}

/// The item the report is about, while it still waits for the SIMs of that report's kind
/// (`has_them`: whether it has them already; a report delivered again changes nothing).
fn waiting_item<'a>(
    order: &'a mut Order,
    item_id: &str,
    has_them: impl Fn(&OrderItem) -> bool,
) -> Option<&'a mut OrderItem> {
    if order.step(StepName::SimDelivery).state != StepState::InProgress {
        return None;
    }
    order
        .items
        .iter_mut()
        .find(|i| i.id == item_id && !i.state.is_final() && !has_them(i))
}

/// Binds SIMs to the item: the line's own SIM (with the cards of its type) first, so the
/// first ICCID is always the line's; the other type's cards after it.
fn add_sims(item: &mut OrderItem, lines_type: bool, cards: impl Iterator<Item = SimCard>) {
    if lines_type {
        let at_front: Vec<SimCard> = cards.collect();
        item.sims.splice(0..0, at_front);
        if let Some(first) = item.sims.first().map(|s| s.iccid.clone()) {
            set_characteristic(item, "ICCID", &first);
        }
    } else {
        item.sims.extend(cards);
    }
}

fn after_sims(order: &mut Order, now: i64, actions: &mut Vec<Action>) {
    order.step_mut(StepName::SimDelivery).detail = None;
    if !sims_missing(order) {
        sims_obtained(order, now, actions);
    }
}

/// TCM answered about an item.
pub(super) fn on_tcm(order: &mut Order, answer: &TcmEventPayload, now: i64) {
    let activating = order
        .steps
        .iter()
        .any(|s| s.name == StepName::Activation && s.state == StepState::InProgress);
    if !activating {
        return;
    }
    match answer {
        TcmEventPayload::SubscriptionActivated(activated) => {
            let Some(item) = order.items.iter_mut().find(|i| i.id == activated.item_id) else {
                return;
            };
            if item.subscription_id.is_some() {
                return;
            }
            item.subscription_id = Some(activated.subscription_id.clone());
            set_characteristic(item, "tcmSubscriptionId", &activated.subscription_id);
            let day = danish_date(now.div_euclid(1000)).to_string();
            set_characteristic(item, "activationDate", &day);
            order.step_mut(StepName::Activation).detail = None;
            let waiting = order
                .items
                .iter()
                .any(|i| !i.state.is_final() && i.subscription_id.is_none());
            if !waiting {
                order.set_step(StepName::Activation, StepState::Done, None);
            }
            finish_if_delivered(order, now);
        }
        TcmEventPayload::ActivationDelayed(delayed) => {
            order.step_mut(StepName::Activation).detail = Some(delayed.reason.clone());
        }
        TcmEventPayload::ActivationRefused(refused) => {
            // Paid and captured, refused by TCM: an agent looks (nothing is undone).
            order.state = OrderState::Held;
            order.state_reason = Some(format!(
                "TCM refused item {}: {} {}",
                refused.item_id, refused.code, refused.reason
            ));
            order.set_step(StepName::Activation, StepState::Failed, None);
            order.step_mut(StepName::Activation).detail =
                Some(format!("{}: {}", refused.code, refused.reason));
        }
    }
}

pub(super) fn complete(order: &mut Order, now: i64) {
    for s in &mut order.steps {
        if matches!(s.state, StepState::InProgress | StepState::Waiting) {
            s.state = StepState::Done;
            s.deadline = None;
        }
    }
    let some_failed = order.items.iter().any(|i| i.state == OrderState::Failed);
    order.set_items(OrderState::Completed);
    order.state = if some_failed {
        OrderState::Partial
    } else {
        OrderState::Completed
    };
    order.completion_date = Some(now);
}
