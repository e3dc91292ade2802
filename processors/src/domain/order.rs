//! Orders as pure values: a frozen basket becomes a TMF622-shaped product order, and every
//! input (a payment report, a number confirmation, a cancellation, a deadline) moves it through
//! its states and steps. [`apply`] returns what must be asked of the outside (payments,
//! numbers); the order processor does the I/O, and [`changes`] says what happened, for
//! `order.events`.
//!
//! Steps run in order: `payment` (the shopper pays: authorised, not captured), then
//! `number_confirmation` (every new number assigned to the order), then `capture` (the money
//! is taken only once everything the order needs is secured). Later issues add identity,
//! porting, SIM and eSIM, and TCM activation as further steps between them; each step has its
//! own deadline and failure outcome.
//!
//! A refused payment does not fail the order: the shopper may try again (another card, the
//! 3-D Secure step again) on the provider's page until the freeze window ends, while prices
//! and numbers stay held. When the window ends unpaid the order fails, the payment is voided
//! and the numbers go back to the pool. Reports from the provider may come twice or out of
//! order: a payment never moves back to an earlier state.

use serde::{Deserialize, Serialize};
use tcom_schemas::order::VerifyOwner;
use tcom_schemas::order::{
    OrderEventPayload, OrderItemStateChanged, OrderState, OrderStateChanged, OrderStepChanged,
};
use tcom_schemas::payment::{PaymentEvent, PaymentState};
use tcom_schemas::porting::PortingEventPayload;
use tcom_schemas::sim::SimEventPayload;
use tcom_schemas::tcm::TcmEventPayload;

use super::basket::{Basket, Line, LineNumber, LinePrice, Totals};
use super::identity::Assurance;
use super::pricing::Minor;

mod fulfilment;
mod port_in;

pub use fulfilment::{Shipment, SimCard, binding_end_date, sims_needed};
use fulfilment::{deliver_sims_or_activate, on_sim, on_tcm};
pub use port_in::{
    CorrectionRefusal, PORT_COMPLETION_GRACE_MS, PortRequest, PortStatus, correct_port_in,
    correctable, requested_port_date,
};
use port_in::{needs_porting, on_porting};

/// How long the numbers of a paid order may take to be confirmed before the items fail.
pub const NUMBER_CONFIRMATION_TIMEOUT_MS: i64 = 60_000;
/// How long a capture may take to be reported before it is asked again.
pub const CAPTURE_TIMEOUT_MS: i64 = 60_000;
/// How often a capture is asked before the order is held for an operator.
pub const MAX_CAPTURE_REQUESTS: u32 = 3;
/// How long a void or refund may take to be reported before it is asked again.
pub const CANCELLATION_TIMEOUT_MS: i64 = 60_000;
/// How often a void or refund is asked before the order is held for an operator.
pub const MAX_CANCELLATION_REQUESTS: u32 = 3;

/// An order as the order processor keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub order_id: String,
    pub tenant_id: String,
    pub basket_id: String,
    pub customer_id: String,
    pub channel: String,
    pub currency: String,
    pub state: OrderState,
    pub version: i64,
    pub order_date: i64,
    pub updated_at: i64,
    /// Unpaid by then: failed.
    pub frozen_until: i64,
    pub return_url: Option<String>,
    pub items: Vec<OrderItem>,
    /// The frozen basket's totals.
    pub totals: Totals,
    pub payment: Payment,
    pub steps: Vec<Step>,
    pub completion_date: Option<i64>,
    pub cancellation_date: Option<i64>,
    pub cancellation_reason: Option<String>,
    /// Why the order failed or is held.
    pub state_reason: Option<String>,
    /// The latest payment reports applied (a provider delivers an event more than once).
    #[serde(default)]
    pub seen_reports: Vec<String>,
    /// While `pendingCancellation`: when the void or refund is asked again.
    #[serde(default)]
    pub cancellation_deadline: Option<i64>,
    #[serde(default)]
    pub cancellation_requests: u32,
    /// What the shop requires of the subscription's owner; `None`: nothing.
    #[serde(default)]
    pub owner_requirement: Option<OwnerPolicy>,
    /// The owner as the shop's broker verified them.
    #[serde(default)]
    pub owner: Option<Owner>,
    /// The customer's contact and delivery details from the checkout, sealed (`pd1.…`) with
    /// the customer's data key (see [`super::contact::ContactDetails`]); `None`: none given.
    #[serde(default)]
    pub contact_sealed: Option<String>,
    /// The shop's country (ISO 3166-1 alpha-2) when the order was placed: the porting rules
    /// follow it. `None` (orders placed before it was kept): Denmark.
    #[serde(default)]
    pub country: Option<String>,
}

/// The shop's owner-verification policy, as it was when the order was placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerPolicy {
    pub min_assurance: Assurance,
    pub min_age: u32,
    /// The order is held for an agent instead of failed when the owner does not qualify.
    pub hold_on_failure: bool,
    /// How long after payment the owner may take to verify.
    pub timeout_ms: i64,
}

/// The verified owner. Personal data only sealed (`pd1.…`) with the customer's data key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub assurance: Assurance,
    pub identity_provider: Option<String>,
    pub verified_at: i64,
    pub cpr_sealed: Option<String>,
    pub name_sealed: Option<String>,
}

/// How many report ids an order remembers: far more than a provider redelivers in a burst.
const SEEN_REPORTS: usize = 64;

/// One plan line of the order, with its add-ons as child items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderItem {
    /// The basket line's id.
    pub id: String,
    pub state: OrderState,
    pub offering_id: String,
    pub name: String,
    pub quantity: u32,
    /// MSISDN, number type, SIM type, binding, port-in details.
    pub characteristics: Vec<(String, String)>,
    /// The new number this item needs assigned, if any (port-ins come with fulfilment).
    pub new_number: Option<String>,
    pub number_confirmed: bool,
    pub price: LinePrice,
    pub add_ons: Vec<OrderItem>,
    /// The subscription TCM created for this item.
    #[serde(default)]
    pub subscription_id: Option<String>,
    /// The item's SIMs once obtained: its own first, then the data-sharing cards'.
    #[serde(default)]
    pub sims: Vec<SimCard>,
    /// A pSIM item's shipment.
    #[serde(default)]
    pub shipment: Option<Shipment>,
    /// A port-in item's port, once submitted.
    #[serde(default)]
    pub port: Option<PortRequest>,
}

impl OrderItem {
    /// What this item (with its add-ons) costs now: one-time charges and the first month.
    fn due_now(&self) -> Minor {
        self.price.one_time_minor
            + self.price.monthly_minor
            + self.add_ons.iter().map(OrderItem::due_now).sum::<Minor>()
    }
}

/// The order's payment, as far as the order knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub provider: String,
    pub account_ref: String,
    pub secret_ref: String,
    pub attempt: i32,
    /// The provider's id, once it created the payment.
    pub reference: Option<String>,
    /// `None`: not created yet.
    pub state: Option<PaymentState>,
    /// Due now: one-time charges and the first month, VAT included.
    pub amount_minor: Minor,
    /// What was (or is being) captured.
    pub captured_minor: Minor,
    pub client_secret: Option<String>,
    pub redirect_url: Option<String>,
    /// The saved payment method for the monthly charges (goes to billing with the order).
    pub payment_method_ref: Option<String>,
    pub last_refusal: Option<String>,
    /// The latest request the provider refused (`operation: reason`).
    #[serde(default)]
    pub last_error: Option<String>,
}

/// The order steps. Later issues add identity, porting, SIM, eSIM and activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepName {
    Payment,
    NumberConfirmation,
    Capture,
    /// The subscription's owner verified (MitID, CPR match, age) when the shop requires it.
    Identity,
    /// The subscriptions created in the legacy TCM system, after the SIMs.
    Activation,
    /// eSIM profiles from the SM-DP+, pSIMs shipped, after the capture.
    SimDelivery,
    /// Port-in numbers moved from the current operator, after the SIMs.
    Porting,
}

impl StepName {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Payment => "payment",
            Self::NumberConfirmation => "number_confirmation",
            Self::Capture => "capture",
            Self::Identity => "identity",
            Self::Activation => "activation",
            Self::SimDelivery => "sim_delivery",
            Self::Porting => "porting",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Waiting,
    InProgress,
    Done,
    Failed,
    Skipped,
}

impl StepState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::InProgress => "in_progress",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub name: StepName,
    pub state: StepState,
    /// When the step times out (ms since the epoch).
    pub deadline: Option<i64>,
    pub requests: u32,
    pub detail: Option<String>,
}

/// The tenant's payment settings as the order needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentSetup {
    pub provider: String,
    pub account_ref: String,
    pub secret_ref: String,
}

/// What the order processor must ask of the outside world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    CreatePayment {
        amount_minor: Minor,
        return_url: String,
    },
    CapturePayment {
        reference: String,
        amount_minor: Minor,
    },
    CancelPayment {
        reference: String,
    },
    RefundPayment {
        reference: String,
        amount_minor: Minor,
    },
    ConfirmNumber {
        msisdn: String,
    },
    ReleaseNumber {
        msisdn: String,
    },
    /// Obtain the item's SIMs (through the outbox topic `sim.commands`): eSIM profiles, or a
    /// shipment of pSIMs.
    DeliverSims {
        item_id: String,
        psim: bool,
        sims: u32,
        /// Whether the line's own SIM is among them (else only data-sharing cards of the
        /// other SIM type).
        line: bool,
    },
    /// Submit the item's port-in to the clearing house (through the outbox topic
    /// `porting.commands`), again with the next attempt after a correction.
    SubmitPort {
        item_id: String,
        attempt: u32,
        msisdn: String,
        current_operator: String,
        sim_icc: Option<String>,
        pac: Option<String>,
        /// `YYYY-MM-DD`.
        requested_date: String,
    },
    /// Create the item's subscription in TCM (through the outbox topic `tcm.commands`).
    ActivateSubscription {
        item_id: String,
        plan_code: String,
        msisdn: String,
        sim_type: String,
        iccid: Option<String>,
        shared_data_sims: Vec<String>,
        binding_end_date: Option<String>,
    },
}

/// Something that happened to the order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input<'a> {
    /// The provider's report on the payment.
    Payment(&'a PaymentEvent),
    NumberConfirmed {
        msisdn: &'a str,
    },
    /// The number could not be assigned (the reservation was lost).
    NumberRefused {
        msisdn: &'a str,
        reason: &'a str,
    },
    /// The customer (or an agent) asks to cancel.
    Cancel {
        reason: Option<&'a str>,
    },
    /// The owner's identity, as the broker confirmed it.
    OwnerVerification(&'a VerifyOwner),
    /// TCM's answer about an item's subscription.
    Tcm(&'a TcmEventPayload),
    /// The SM-DP+'s or the logistics house's report about an item's SIMs.
    Sim(&'a SimEventPayload),
    /// The clearing house's report about an item's port-in.
    Porting(&'a PortingEventPayload),
    /// Time passed: deadlines may be due.
    Tick,
}

/// The answer to a cancellation request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelAnswer {
    /// Cancelled, or being cancelled (the payment is voided or refunded first).
    Accepted,
    /// Fulfilment has started: an agent assesses the request.
    Assessing,
    /// Already final: nothing to cancel.
    TooLate,
}

/// The order a frozen basket becomes.
pub fn place(
    basket: &Basket,
    frozen_until: i64,
    payment: &PaymentSetup,
    return_url: Option<String>,
    now: i64,
) -> Order {
    let items: Vec<OrderItem> = basket.lines.iter().map(item_of).collect();
    let amount_minor = basket.totals.one_time_minor + basket.totals.monthly_minor;
    let mut order = Order {
        order_id: basket
            .checkout
            .as_ref()
            .map_or_else(|| basket.basket_id.clone(), |c| c.order_id.clone()),
        tenant_id: basket.tenant_id.clone(),
        basket_id: basket.basket_id.clone(),
        customer_id: basket.customer_id.clone().unwrap_or_default(),
        channel: basket.channel.clone(),
        currency: basket.currency.clone(),
        state: OrderState::Acknowledged,
        version: 0,
        order_date: now,
        updated_at: now,
        frozen_until,
        return_url,
        items,
        totals: basket.totals.clone(),
        payment: Payment {
            provider: payment.provider.clone(),
            account_ref: payment.account_ref.clone(),
            secret_ref: payment.secret_ref.clone(),
            attempt: 1,
            reference: None,
            state: None,
            amount_minor,
            captured_minor: 0,
            client_secret: None,
            redirect_url: None,
            payment_method_ref: None,
            last_refusal: None,
            last_error: None,
        },
        steps: vec![
            step(StepName::Payment, StepState::InProgress, Some(frozen_until)),
            step(StepName::NumberConfirmation, StepState::Waiting, None),
            step(StepName::Capture, StepState::Waiting, None),
            step(StepName::SimDelivery, StepState::Waiting, None),
            step(StepName::Activation, StepState::Waiting, None),
        ],
        completion_date: None,
        cancellation_date: None,
        cancellation_reason: None,
        state_reason: None,
        seen_reports: Vec::new(),
        cancellation_deadline: None,
        cancellation_requests: 0,
        owner_requirement: None,
        owner: None,
        contact_sealed: None,
        country: None,
    };
    if needs_porting(&order) {
        // The numbers are ours before TCM creates the subscriptions with them.
        let activation = order.steps.len() - 1;
        order.steps.insert(
            activation,
            step(StepName::Porting, StepState::Waiting, None),
        );
    }
    order
}

/// Makes a new order wait for its owner's verification before numbers are confirmed and the
/// payment captured: the `identity` step follows `payment`. The owner may verify at once.
pub fn require_owner(order: &mut Order, policy: OwnerPolicy) {
    order.owner_requirement = Some(policy);
    let position = order
        .steps
        .iter()
        .position(|s| s.name == StepName::Payment)
        .map_or(0, |p| p + 1);
    order.steps.insert(
        position,
        step(StepName::Identity, StepState::InProgress, None),
    );
}

/// The first thing a new order asks: the payment.
pub fn start(order: &Order, default_return_url: &str) -> Vec<Action> {
    vec![Action::CreatePayment {
        amount_minor: order.payment.amount_minor,
        return_url: order
            .return_url
            .clone()
            .unwrap_or_else(|| default_return_url.to_owned()),
    }]
}

fn step(name: StepName, state: StepState, deadline: Option<i64>) -> Step {
    Step {
        name,
        state,
        deadline,
        requests: 0,
        detail: None,
    }
}

fn item_of(line: &Line) -> OrderItem {
    let mut characteristics = vec![
        ("MSISDN".to_owned(), line.number.msisdn().to_owned()),
        (
            "simType".to_owned(),
            format!("{:?}", line.sim_type).to_uppercase(),
        ),
    ];
    let new_number = match &line.number {
        LineNumber::NewNumber { msisdn, .. } => {
            characteristics.push(("numberType".to_owned(), "new".to_owned()));
            Some(msisdn.clone())
        }
        LineNumber::PortIn {
            current_operator,
            sim_icc,
            desired_port_date,
            pac,
            ..
        } => {
            characteristics.push(("numberType".to_owned(), "portIn".to_owned()));
            characteristics.push(("currentOperator".to_owned(), current_operator.clone()));
            if let Some(icc) = sim_icc {
                characteristics.push(("currentSimIcc".to_owned(), icc.clone()));
            }
            if let Some(day) = desired_port_date {
                characteristics.push(("desiredPortDate".to_owned(), day.to_string()));
            }
            if let Some(pac) = pac {
                characteristics.push(("pac".to_owned(), pac.clone()));
            }
            None
        }
    };
    if let Some(months) = line.binding_months {
        characteristics.push(("bindingMonths".to_owned(), months.to_string()));
    }
    OrderItem {
        id: line.line_id.clone(),
        state: OrderState::Acknowledged,
        offering_id: line.offering_id.clone(),
        name: line.name.clone(),
        quantity: 1,
        characteristics,
        new_number,
        number_confirmed: false,
        subscription_id: None,
        sims: Vec::new(),
        shipment: None,
        port: None,
        price: line.price.clone(),
        add_ons: line
            .add_ons
            .iter()
            .map(|a| OrderItem {
                id: format!("{}/{}", line.line_id, a.offering_id),
                state: OrderState::Acknowledged,
                offering_id: a.offering_id.clone(),
                name: a.name.clone(),
                quantity: a.quantity,
                // A data-sharing card is a SIM of the type chosen for it, else the line's.
                characteristics: vec![(
                    "simType".to_owned(),
                    format!("{:?}", a.sim_type.unwrap_or(line.sim_type)).to_uppercase(),
                )],
                new_number: None,
                number_confirmed: false,
                price: a.price.clone(),
                add_ons: Vec::new(),
                subscription_id: None,
                sims: Vec::new(),
                shipment: None,
                port: None,
            })
            .collect(),
    }
}

/// How far a payment has come; a report of a lower rank than the current one is stale.
fn rank(state: PaymentState) -> u8 {
    match state {
        PaymentState::AwaitingShopper => 0,
        PaymentState::Refused => 1,
        PaymentState::RequiresAction => 2,
        PaymentState::Processing => 3,
        PaymentState::Authorized => 4,
        PaymentState::Captured => 5,
        PaymentState::Refunded | PaymentState::Canceled | PaymentState::Error => 6,
    }
}

/// Whether a report moves the payment on (duplicates and stale reports do not).
fn moves_on(current: Option<PaymentState>, reported: PaymentState) -> bool {
    let Some(current) = current else {
        return true;
    };
    if current == reported {
        return false;
    }
    // A 3-D Secure step that failed, or a retry's refusal, comes after a higher rank.
    let refused_after_trying = reported == PaymentState::Refused
        && matches!(
            current,
            PaymentState::RequiresAction | PaymentState::Processing
        );
    refused_after_trying || rank(reported) > rank(current)
}

impl Order {
    fn step_mut(&mut self, name: StepName) -> &mut Step {
        self.steps
            .iter_mut()
            .find(|s| s.name == name)
            .expect("every order has every step")
    }

    pub fn step(&self, name: StepName) -> &Step {
        self.steps
            .iter()
            .find(|s| s.name == name)
            .expect("every order has every step")
    }

    fn set_step(&mut self, name: StepName, state: StepState, deadline: Option<i64>) {
        let step = self.step_mut(name);
        step.state = state;
        step.deadline = deadline;
    }

    fn set_items(&mut self, state: OrderState) {
        for item in &mut self.items {
            if !item.state.is_final() {
                item.state = state;
                for add_on in &mut item.add_ons {
                    add_on.state = state;
                }
            }
        }
    }

    /// The next time a deadline of this order is due, if any.
    pub fn next_deadline(&self) -> Option<i64> {
        if self.state.is_final() {
            return None;
        }
        let cancellation = self
            .cancellation_deadline
            .filter(|_| self.state == OrderState::PendingCancellation);
        self.steps
            .iter()
            .filter(|s| s.state == StepState::InProgress)
            .filter_map(|s| s.deadline)
            .chain(cancellation)
            .min()
    }

    /// The numbers the order still holds (to give back when it ends without them).
    fn held_numbers(&self) -> Vec<String> {
        self.items
            .iter()
            .filter_map(|i| i.new_number.clone())
            .collect()
    }

    fn live_reference(&self) -> Option<String> {
        let voidable = matches!(
            self.payment.state,
            Some(
                PaymentState::AwaitingShopper
                    | PaymentState::RequiresAction
                    | PaymentState::Processing
                    | PaymentState::Refused
                    | PaymentState::Authorized
            )
        );
        self.payment.reference.clone().filter(|_| voidable)
    }

    /// Fails the order: voids the payment, gives the numbers back.
    fn fail(&mut self, reason: &str, actions: &mut Vec<Action>) {
        self.state = OrderState::Failed;
        self.state_reason = Some(reason.to_owned());
        self.set_items(OrderState::Failed);
        for s in &mut self.steps {
            if matches!(s.state, StepState::InProgress | StepState::Waiting) {
                s.state = if s.state == StepState::InProgress {
                    StepState::Failed
                } else {
                    StepState::Skipped
                };
                s.deadline = None;
            }
        }
        if let Some(reference) = self.live_reference() {
            actions.push(Action::CancelPayment { reference });
        } else if let (Some(PaymentState::Captured), Some(reference)) =
            (self.payment.state, self.payment.reference.clone())
        {
            actions.push(Action::RefundPayment {
                reference,
                amount_minor: self.payment.captured_minor,
            });
        }
        actions.extend(
            self.held_numbers()
                .into_iter()
                .map(|msisdn| Action::ReleaseNumber { msisdn }),
        );
    }
}

/// Applies one input at `now`; returns what to ask of the outside.
pub fn apply(order: &mut Order, input: &Input<'_>, now: i64) -> Vec<Action> {
    let mut actions = Vec::new();
    match input {
        Input::Payment(event) => on_payment(order, event, now, &mut actions),
        Input::NumberConfirmed { msisdn } => {
            if order.step(StepName::NumberConfirmation).state == StepState::InProgress {
                for item in &mut order.items {
                    if item.new_number.as_deref() == Some(*msisdn) {
                        item.number_confirmed = true;
                    }
                }
                advance_confirmation(order, now, &mut actions);
            }
        }
        Input::NumberRefused { msisdn, reason } => {
            if order.step(StepName::NumberConfirmation).state == StepState::InProgress {
                for item in &mut order.items {
                    if item.new_number.as_deref() == Some(*msisdn) && !item.number_confirmed {
                        item.state = OrderState::Failed;
                        for add_on in &mut item.add_ons {
                            add_on.state = OrderState::Failed;
                        }
                    }
                }
                order.step_mut(StepName::NumberConfirmation).detail =
                    Some(format!("{msisdn}: {reason}"));
                advance_confirmation(order, now, &mut actions);
            }
        }
        Input::Cancel { reason } => {
            let _ = cancel(order, *reason, now, &mut actions);
        }
        Input::OwnerVerification(verification) => {
            on_owner_verification(order, verification, now, &mut actions);
        }
        Input::Tcm(answer) => on_tcm(order, answer, now),
        Input::Sim(report) => on_sim(order, report, now, &mut actions),
        Input::Porting(report) => on_porting(order, report, now, &mut actions),
        Input::Tick => on_deadlines(order, now, &mut actions),
    }
    actions
}

/// What undoes the payment as it stands: a void while nothing is captured, a refund of what
/// is; nothing when there is no payment (yet).
fn give_money_back(order: &Order) -> Option<Action> {
    if let Some(reference) = order.live_reference() {
        return Some(Action::CancelPayment { reference });
    }
    match (order.payment.state, order.payment.reference.clone()) {
        (Some(PaymentState::Captured), Some(reference)) => Some(Action::RefundPayment {
            reference,
            amount_minor: order.payment.captured_minor,
        }),
        _ => None,
    }
}

/// A cancellation request and its answer.
pub fn cancel(
    order: &mut Order,
    reason: Option<&str>,
    now: i64,
    actions: &mut Vec<Action>,
) -> CancelAnswer {
    match order.state {
        OrderState::Acknowledged | OrderState::Pending | OrderState::InProgress => {
            order.cancellation_date = Some(now);
            order.cancellation_reason = Some(reason.unwrap_or("customer request").to_owned());
            for s in &mut order.steps {
                if matches!(s.state, StepState::InProgress | StepState::Waiting) {
                    s.state = StepState::Skipped;
                    s.deadline = None;
                }
            }
            actions.extend(
                order
                    .held_numbers()
                    .into_iter()
                    .map(|msisdn| Action::ReleaseNumber { msisdn }),
            );
            match give_money_back(order) {
                Some(action) => {
                    actions.push(action);
                    order.state = OrderState::PendingCancellation;
                    order.cancellation_deadline = Some(now + CANCELLATION_TIMEOUT_MS);
                    order.cancellation_requests = 1;
                }
                // Nothing to void yet: a payment created later is voided when it is reported.
                None => {
                    order.state = OrderState::Cancelled;
                    order.set_items(OrderState::Cancelled);
                }
            }
            CancelAnswer::Accepted
        }
        OrderState::Completed | OrderState::Partial | OrderState::Held => {
            order.cancellation_reason = Some(reason.unwrap_or("customer request").to_owned());
            order.state = OrderState::AssessingCancellation;
            CancelAnswer::Assessing
        }
        OrderState::PendingCancellation | OrderState::AssessingCancellation => {
            CancelAnswer::Accepted
        }
        OrderState::Cancelled | OrderState::Failed | OrderState::Rejected => CancelAnswer::TooLate,
    }
}

fn record_payment(order: &mut Order, event: &PaymentEvent) {
    let payment = &mut order.payment;
    payment.state = Some(event.state);
    // A refused attempt's own id (Adyen gives each try a pspReference) is not the payment to
    // capture or void later.
    let keeps_reference = event.state == PaymentState::Refused && payment.reference.is_some();
    if !event.reference.is_empty() && !keeps_reference {
        payment.reference = Some(event.reference.clone());
    }
    if event.client_secret.is_some() {
        payment.client_secret = event.client_secret.clone();
    }
    if event.redirect_url.is_some() || event.state != PaymentState::RequiresAction {
        payment.redirect_url = event.redirect_url.clone().or(payment.redirect_url.take());
    }
    if event.payment_method_ref.is_some() {
        payment.payment_method_ref = event.payment_method_ref.clone();
    }
    if event.state == PaymentState::Refused {
        payment.last_refusal = event.reason.clone();
    }
}

fn remember(order: &mut Order, event: &PaymentEvent) {
    order.seen_reports.push(event.event_id.clone());
    if order.seen_reports.len() > SEEN_REPORTS {
        order.seen_reports.remove(0);
    }
}

/// The operation a payment command did, from its id (`{order}:{attempt}:{operation}[:…]`).
fn operation_of(cause: &str) -> &str {
    cause.split(':').nth(2).unwrap_or_default()
}

fn on_payment(order: &mut Order, event: &PaymentEvent, now: i64, actions: &mut Vec<Action>) {
    if event.attempt != 0 && event.attempt != order.payment.attempt {
        return;
    }
    if order.seen_reports.contains(&event.event_id) {
        return;
    }
    if event.state == PaymentState::Error {
        // Not a state of the payment: a request the provider refused. What it means depends
        // on the request; the payment stays as it was.
        remember(order, event);
        on_refused_request(order, event, actions);
        return;
    }
    if matches!(order.state, OrderState::Cancelled | OrderState::Failed) {
        // The order ended without its payment: money the provider reports holding goes back,
        // whatever the report's rank (an authorisation after a void, a capture after a
        // refusal), and each report at most once.
        remember(order, event);
        give_back(order, event, actions);
        if moves_on(order.payment.state, event.state) {
            record_payment(order, event);
        }
        return;
    }
    // A report that does not move the payment on changes nothing (not even the version).
    if !moves_on(order.payment.state, event.state) {
        return;
    }
    remember(order, event);
    record_payment(order, event);
    match (order.state, event.state) {
        (OrderState::PendingCancellation, PaymentState::Canceled | PaymentState::Refunded) => {
            order.state = OrderState::Cancelled;
            order.set_items(OrderState::Cancelled);
            order.cancellation_deadline = None;
        }
        (OrderState::PendingCancellation, PaymentState::Captured) => {
            // Captured before the void arrived: give it back instead.
            order.payment.captured_minor = event.amount_minor;
            actions.push(Action::RefundPayment {
                reference: event.reference.clone(),
                amount_minor: event.amount_minor,
            });
        }
        (OrderState::PendingCancellation, PaymentState::Authorized) => {
            // Authorised after the cancellation was asked (the void went to a payment that
            // did not exist yet): void this one.
            actions.push(Action::CancelPayment {
                reference: event.reference.clone(),
            });
        }
        (
            OrderState::Acknowledged | OrderState::Pending,
            PaymentState::AwaitingShopper
            | PaymentState::RequiresAction
            | PaymentState::Processing
            | PaymentState::Refused,
        ) => {
            order.state = OrderState::Pending;
            order.step_mut(StepName::Payment).detail = match event.state {
                PaymentState::Refused => Some(format!(
                    "refused: {}; the shopper may try again until the order expires",
                    event.reason.as_deref().unwrap_or("no reason given")
                )),
                PaymentState::RequiresAction => Some("3-D Secure step".to_owned()),
                _ => None,
            };
        }
        (
            OrderState::Acknowledged | OrderState::Pending,
            PaymentState::Authorized | PaymentState::Captured,
        ) => {
            // Captured already (a provider that captures on its own): the numbers are still
            // secured first; what cannot be delivered is refunded then.
            if event.state == PaymentState::Captured {
                order.payment.captured_minor = event.amount_minor;
            }
            order.state = OrderState::InProgress;
            order.set_items(OrderState::InProgress);
            order.set_step(StepName::Payment, StepState::Done, None);
            order.step_mut(StepName::Payment).detail = None;
            if owner_pending(order) {
                // Paid, but nothing is secured or captured for an unverified owner.
                let timeout = order.owner_requirement.as_ref().map_or(0, |p| p.timeout_ms);
                order.step_mut(StepName::Identity).deadline = Some(now + timeout);
            } else {
                start_confirmation(order, now, actions);
            }
        }
        (OrderState::InProgress | OrderState::Held, PaymentState::Captured) => {
            let capturing = order.step(StepName::Capture).state == StepState::InProgress
                || order.state == OrderState::Held;
            if capturing {
                order.payment.captured_minor = event.amount_minor;
                deliver_sims_or_activate(order, now, actions);
            } else {
                // Captured while the numbers are still being confirmed: completion waits
                // for them (see `start_capture`).
                order.payment.captured_minor = event.amount_minor;
            }
        }
        (
            OrderState::Acknowledged
            | OrderState::Pending
            | OrderState::InProgress
            | OrderState::Held,
            PaymentState::Canceled | PaymentState::Refunded,
        ) => {
            order.fail("the payment was cancelled at the provider", actions);
        }
        _ => {}
    }
}

/// For an order that ended without its payment: void what is authorised, refund what is
/// captured.
fn give_back(order: &Order, event: &PaymentEvent, actions: &mut Vec<Action>) {
    if event.reference.is_empty() {
        return;
    }
    match event.state {
        PaymentState::Captured => actions.push(Action::RefundPayment {
            reference: event.reference.clone(),
            amount_minor: event.amount_minor,
        }),
        PaymentState::AwaitingShopper
        | PaymentState::RequiresAction
        | PaymentState::Processing
        | PaymentState::Authorized => {
            let voided = order.payment.state == Some(PaymentState::Canceled)
                && order.payment.reference.as_deref() == Some(event.reference.as_str());
            if !voided || event.state == PaymentState::Authorized {
                actions.push(Action::CancelPayment {
                    reference: event.reference.clone(),
                });
            }
        }
        // A refused attempt holds no money; a void or refund is what we asked for.
        _ => {}
    }
}

/// The provider refused a request of ours.
fn on_refused_request(order: &mut Order, event: &PaymentEvent, actions: &mut Vec<Action>) {
    let reason = event.reason.as_deref().unwrap_or("no reason given");
    let operation = operation_of(&event.cause);
    order.payment.last_error = Some(format!("{operation}: {reason}"));
    match operation {
        // No payment exists: the order cannot be paid as the shop is set up.
        "create" if !order.state.is_final() => {
            order.fail(
                &format!("the payment provider refused the payment: {reason}"),
                actions,
            );
        }
        // Money is authorised or captured and the provider refused what we asked: an
        // operator must look (capture by hand, void or refund).
        "capture" | "cancel" | "refund" if !order.state.is_final() => {
            order.state = OrderState::Held;
            order.state_reason = Some(format!(
                "the payment provider refused to {operation}: {reason}"
            ));
            for s in &mut order.steps {
                if s.state == StepState::InProgress {
                    s.state = StepState::Failed;
                    s.deadline = None;
                }
            }
            order.cancellation_deadline = None;
        }
        _ => {}
    }
}

/// Whether the order still waits for its owner to be verified.
fn owner_pending(order: &Order) -> bool {
    order.owner_requirement.is_some()
        && order
            .steps
            .iter()
            .any(|s| s.name == StepName::Identity && s.state == StepState::InProgress)
}

/// Why a verification does not satisfy the policy, if it does not.
fn owner_refusal(policy: &OwnerPolicy, verification: &VerifyOwner) -> Option<String> {
    if let Some(refusal) = &verification.refusal {
        return Some(refusal.clone());
    }
    if !verification.of_age {
        return Some("owner_under_age".to_owned());
    }
    let assurance = Assurance::parse(&verification.assurance).unwrap_or(Assurance::Low);
    (assurance < policy.min_assurance).then(|| "assurance_too_low".to_owned())
}

fn on_owner_verification(
    order: &mut Order,
    verification: &VerifyOwner,
    now: i64,
    actions: &mut Vec<Action>,
) {
    if order.state.is_final() || !owner_pending(order) {
        return;
    }
    let Some(policy) = order.owner_requirement.clone() else {
        return;
    };
    match owner_refusal(&policy, verification) {
        None => {
            order.owner = Some(Owner {
                assurance: Assurance::parse(&verification.assurance).unwrap_or(Assurance::Low),
                identity_provider: verification.identity_provider.clone(),
                verified_at: now,
                cpr_sealed: verification.cpr_sealed.clone(),
                name_sealed: verification.name_sealed.clone(),
            });
            order.set_step(StepName::Identity, StepState::Done, None);
            order.step_mut(StepName::Identity).detail = None;
            let paid = order.step(StepName::Payment).state == StepState::Done;
            if paid && order.step(StepName::NumberConfirmation).state == StepState::Waiting {
                start_confirmation(order, now, actions);
            }
        }
        Some(code) => owner_not_verified(order, &policy, &code, actions),
    }
}

/// The owner did not qualify (or did not verify in time): the order ends as the shop says.
fn owner_not_verified(
    order: &mut Order,
    policy: &OwnerPolicy,
    code: &str,
    actions: &mut Vec<Action>,
) {
    order.set_step(StepName::Identity, StepState::Failed, None);
    order.step_mut(StepName::Identity).detail = Some(code.to_owned());
    let reason = format!("the subscription's owner could not be verified: {code}");
    if policy.hold_on_failure {
        order.state = OrderState::Held;
        order.state_reason = Some(reason);
    } else {
        order.fail(&reason, actions);
    }
}

fn start_confirmation(order: &mut Order, now: i64, actions: &mut Vec<Action>) {
    let numbers: Vec<String> = order
        .items
        .iter()
        .filter(|i| !i.number_confirmed)
        .filter_map(|i| i.new_number.clone())
        .collect();
    if numbers.is_empty() {
        order.set_step(StepName::NumberConfirmation, StepState::Skipped, None);
        start_capture(order, now, actions);
        return;
    }
    order.set_step(
        StepName::NumberConfirmation,
        StepState::InProgress,
        Some(now + NUMBER_CONFIRMATION_TIMEOUT_MS),
    );
    order.step_mut(StepName::NumberConfirmation).requests += 1;
    actions.extend(
        numbers
            .into_iter()
            .map(|msisdn| Action::ConfirmNumber { msisdn }),
    );
}

/// Once every number is decided: capture what the items that succeeded cost, or fail.
fn advance_confirmation(order: &mut Order, now: i64, actions: &mut Vec<Action>) {
    let undecided = order
        .items
        .iter()
        .any(|i| i.new_number.is_some() && !i.number_confirmed && !i.state.is_final());
    if undecided {
        return;
    }
    let any_alive = order.items.iter().any(|i| !i.state.is_final());
    if !any_alive {
        order.set_step(StepName::NumberConfirmation, StepState::Failed, None);
        order.fail("no number of the order could be assigned", actions);
        return;
    }
    order.set_step(StepName::NumberConfirmation, StepState::Done, None);
    start_capture(order, now, actions);
}

fn start_capture(order: &mut Order, now: i64, actions: &mut Vec<Action>) {
    let Some(reference) = order.payment.reference.clone() else {
        order.fail("authorised without a payment reference", actions);
        return;
    };
    let amount_minor: Minor = order
        .items
        .iter()
        .filter(|i| !i.state.is_final())
        .map(OrderItem::due_now)
        .sum::<Minor>()
        .min(order.payment.amount_minor);
    if order.payment.state == Some(PaymentState::Captured) {
        // Captured by the provider already: refund what cannot be delivered.
        let over = order.payment.captured_minor - amount_minor;
        if over > 0 {
            actions.push(Action::RefundPayment {
                reference,
                amount_minor: over,
            });
            order.payment.captured_minor = amount_minor;
        }
        deliver_sims_or_activate(order, now, actions);
        return;
    }
    order.payment.captured_minor = amount_minor;
    let capture = order.step_mut(StepName::Capture);
    capture.state = StepState::InProgress;
    capture.deadline = Some(now + CAPTURE_TIMEOUT_MS);
    capture.requests += 1;
    actions.push(Action::CapturePayment {
        reference,
        amount_minor,
    });
}

fn on_deadlines(order: &mut Order, now: i64, actions: &mut Vec<Action>) {
    if order.state == OrderState::PendingCancellation
        && order.cancellation_deadline.is_some_and(|d| d <= now)
    {
        if order.cancellation_requests >= MAX_CANCELLATION_REQUESTS {
            order.state = OrderState::Held;
            order.state_reason =
                Some("the void or refund was not confirmed by the provider".into());
            order.cancellation_deadline = None;
        } else if let Some(action) = give_money_back(order) {
            // Asked again with the same idempotency key: at most one void or refund happens.
            actions.push(action);
            order.cancellation_requests += 1;
            order.cancellation_deadline = Some(now + CANCELLATION_TIMEOUT_MS);
        } else {
            order.state = OrderState::Cancelled;
            order.set_items(OrderState::Cancelled);
            order.cancellation_deadline = None;
        }
        return;
    }
    let due = |s: &Step| s.state == StepState::InProgress && s.deadline.is_some_and(|d| d <= now);
    if due(order.step(StepName::Payment))
        && matches!(order.state, OrderState::Acknowledged | OrderState::Pending)
    {
        order.fail("not paid within the checkout's freeze window", actions);
        return;
    }
    if owner_pending(order) && due(order.step(StepName::Identity)) {
        if let Some(policy) = order.owner_requirement.clone() {
            owner_not_verified(order, &policy, "owner_not_verified_in_time", actions);
        }
        return;
    }
    let porting = order.steps.iter().find(|s| s.name == StepName::Porting);
    if porting.is_some_and(due) {
        port_in::on_deadline(order, now);
        return;
    }
    if due(order.step(StepName::NumberConfirmation)) {
        for item in &mut order.items {
            if item.new_number.is_some() && !item.number_confirmed {
                item.state = OrderState::Failed;
                for add_on in &mut item.add_ons {
                    add_on.state = OrderState::Failed;
                }
            }
        }
        order.step_mut(StepName::NumberConfirmation).detail =
            Some("a number was not confirmed in time".to_owned());
        advance_confirmation(order, now, actions);
        return;
    }
    if due(order.step(StepName::Capture)) {
        let capture = order.step(StepName::Capture);
        if capture.requests >= MAX_CAPTURE_REQUESTS {
            // The money is authorised but its capture never confirmed: an operator looks.
            order.state = OrderState::Held;
            order.state_reason = Some("the capture was not confirmed by the provider".into());
            order.set_step(StepName::Capture, StepState::Failed, None);
        } else if let Some(reference) = order.payment.reference.clone() {
            // Asked again with the same idempotency key: at most one capture happens.
            let amount_minor = order.payment.captured_minor;
            let capture = order.step_mut(StepName::Capture);
            capture.requests += 1;
            capture.deadline = Some(now + CAPTURE_TIMEOUT_MS);
            actions.push(Action::CapturePayment {
                reference,
                amount_minor,
            });
        }
    }
}

/// The events that lead from `before` to `after` (`None`: a new order), in a stable order.
pub fn changes(before: Option<&Order>, after: &Order) -> Vec<OrderEventPayload> {
    let mut events = Vec::new();
    let from = before.map(|b| b.state);
    if from != Some(after.state) {
        events.push(OrderEventPayload::OrderStateChanged(OrderStateChanged {
            from,
            to: after.state,
            reason: after
                .state_reason
                .clone()
                .filter(|_| matches!(after.state, OrderState::Failed | OrderState::Held))
                .or_else(|| {
                    after.cancellation_reason.clone().filter(|_| {
                        matches!(
                            after.state,
                            OrderState::Cancelled
                                | OrderState::PendingCancellation
                                | OrderState::AssessingCancellation
                        )
                    })
                }),
        }));
    }
    for item in &after.items {
        let old = before.and_then(|b| b.items.iter().find(|i| i.id == item.id));
        let from = old.map(|i| i.state);
        if from != Some(item.state) {
            events.push(OrderEventPayload::OrderItemStateChanged(
                OrderItemStateChanged {
                    item_id: item.id.clone(),
                    from,
                    to: item.state,
                },
            ));
        }
    }
    for s in &after.steps {
        let old = before.and_then(|b| b.steps.iter().find(|o| o.name == s.name));
        if old.map(|o| (o.state, &o.detail)) != Some((s.state, &s.detail)) {
            events.push(OrderEventPayload::OrderStepChanged(OrderStepChanged {
                step: s.name.as_str().to_owned(),
                state: s.state.as_str().to_owned(),
                detail: s.detail.clone(),
            }));
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::basket::{AddOnLine, Checkout, Reservation};
    use tcom_schemas::basket::{BasketStatus, SimType};
    use tcom_schemas::order::CorrectPortIn;

    const NOW: i64 = 1_800_000_000_000;
    const FREEZE: i64 = NOW + 1_800_000;

    fn price(one_time: Minor, monthly: Minor) -> LinePrice {
        LinePrice {
            one_time_minor: one_time,
            monthly_minor: monthly,
            summary: String::new(),
            phases: Vec::new(),
            applied: vec!["spring".into()],
        }
    }

    fn line(id: &str, number: LineNumber) -> Line {
        Line {
            line_id: id.into(),
            offering_id: "plan".into(),
            name: "Plan".into(),
            sim_type: SimType::Esim,
            number,
            binding_months: Some(6),
            add_ons: vec![AddOnLine {
                offering_id: "share".into(),
                name: "Data card".into(),
                quantity: 2,
                price: price(0, 4000),
                sim_type: None,
            }],
            price: price(9900, 14900),
        }
    }

    fn new_number(msisdn: &str) -> LineNumber {
        LineNumber::NewNumber {
            msisdn: msisdn.into(),
            reservation: Reservation::Held { until: FREEZE },
        }
    }

    fn basket(lines: Vec<Line>) -> Basket {
        let one_time = lines.iter().map(|l| l.price.one_time_minor).sum();
        let monthly = lines
            .iter()
            .map(|l| {
                l.price.monthly_minor + l.add_ons.iter().map(|a| a.price.monthly_minor).sum::<i64>()
            })
            .sum();
        Basket {
            basket_id: "b1".into(),
            tenant_id: "nordlys".into(),
            status: BasketStatus::CheckedOut,
            channel: "web".into(),
            segment: "consumer".into(),
            customer_id: Some("alice".into()),
            currency: "DKK".into(),
            version: 7,
            created_at: NOW - 1000,
            updated_at: NOW,
            expires_at: NOW + 60_000,
            lines,
            totals: Totals {
                one_time_minor: one_time,
                monthly_minor: monthly,
                monthly_vat_minor: None,
            },
            merged_into: None,
            checkout: Some(Checkout {
                order_id: "b1".into(),
                frozen_until: FREEZE,
            }),
        }
    }

    fn setup() -> PaymentSetup {
        PaymentSetup {
            provider: "stripe".into(),
            account_ref: "acct".into(),
            secret_ref: "file://stripe/key".into(),
        }
    }

    fn order(lines: Vec<Line>) -> Order {
        place(&basket(lines), FREEZE, &setup(), None, NOW)
    }

    fn two_lines() -> Order {
        order(vec![
            line("l1", new_number("+4520000001")),
            line(
                "l2",
                LineNumber::PortIn {
                    msisdn: "+4520000002".into(),
                    current_operator: "TDC".into(),
                    sim_icc: None,
                    desired_port_date: None,
                    pac: None,
                },
            ),
        ])
    }

    fn report(state: PaymentState) -> PaymentEvent {
        PaymentEvent {
            event_id: format!("e-{state:?}"),
            tenant_id: "nordlys".into(),
            order_id: "b1".into(),
            attempt: 1,
            occurred_at: NOW,
            provider: "stripe".into(),
            reference: "pi_1".into(),
            state,
            amount_minor: 0,
            currency: "DKK".into(),
            client_secret: Some("pi_1_secret".into()),
            redirect_url: None,
            payment_method_ref: None,
            reason: Some("card_declined".into()),
            cause: "c".into(),
        }
    }

    fn pay(order: &mut Order, state: PaymentState) -> Vec<Action> {
        apply(order, &Input::Payment(&report(state)), NOW + 10)
    }

    /// TCM creates the subscription of every item the order asked for.
    /// The SM-DP+ answers every eSIM request among `asked`; returns what the order asks next.
    fn sims_ready(order: &mut Order, asked: &[Action]) -> Vec<Action> {
        let mut next = Vec::new();
        for action in asked {
            if let Action::DeliverSims { item_id, sims, .. } = action {
                let ready =
                    SimEventPayload::EsimProfilesReady(tcom_schemas::sim::EsimProfilesReady {
                        item_id: item_id.clone(),
                        profiles: (0..*sims)
                            .map(|n| tcom_schemas::sim::EsimProfile {
                                iccid: format!("8945{item_id}{n}"),
                                activation_code_sealed: format!("pd1.code-{item_id}-{n}"),
                                confirmation_code_sealed: None,
                            })
                            .collect(),
                    });
                next.extend(apply(order, &Input::Sim(&ready), NOW + 20));
            }
        }
        next
    }

    /// The clearing house submits, accepts and completes the port of every item asked for
    /// among `asked`; returns what the order asks next.
    fn ported(order: &mut Order, asked: &[Action]) -> Vec<Action> {
        let mut next = Vec::new();
        for action in asked {
            if let Action::SubmitPort {
                item_id, attempt, ..
            } = action
            {
                next.extend(port_answers(order, item_id, *attempt, "P1", true));
            }
        }
        next
    }

    /// The clearing house takes attempt `attempt` of `item` as `porting_id`, then (when
    /// `accept`) accepts and completes it.
    fn port_answers(
        order: &mut Order,
        item: &str,
        attempt: u32,
        porting_id: &str,
        accept: bool,
    ) -> Vec<Action> {
        use tcom_schemas::porting::*;
        let mut next = apply(
            order,
            &Input::Porting(&PortingEventPayload::PortSubmitted(PortSubmitted {
                item_id: item.into(),
                attempt: i32::try_from(attempt).unwrap(),
                porting_id: porting_id.into(),
                answer_due_at: NOW + 48 * 3_600_000,
            })),
            NOW + 25,
        );
        if accept {
            next.extend(apply(
                order,
                &Input::Porting(&PortingEventPayload::PortAccepted(PortAccepted {
                    item_id: item.into(),
                    porting_id: porting_id.into(),
                    port_date: "2027-01-18".into(),
                    executes_at: NOW + 3 * 86_400_000,
                })),
                NOW + 26,
            ));
            next.extend(apply(
                order,
                &Input::Porting(&PortingEventPayload::PortCompleted(PortCompleted {
                    item_id: item.into(),
                    porting_id: porting_id.into(),
                    msisdn: "+4520000002".into(),
                    completed_at: NOW + 3 * 86_400_000,
                })),
                NOW + 27,
            ));
        }
        next
    }

    fn activated_in_tcm(order: &mut Order, asked: &[Action]) {
        let mut asked = asked.to_vec();
        let more = sims_ready(order, &asked);
        asked.extend(more);
        let more = ported(order, &asked);
        asked.extend(more);
        for action in &asked {
            if let Action::ActivateSubscription { item_id, .. } = action {
                let answer = TcmEventPayload::SubscriptionActivated(
                    tcom_schemas::tcm::SubscriptionActivated {
                        item_id: item_id.clone(),
                        subscription_id: format!("S-{item_id}"),
                        tcm_customer_id: "C1".into(),
                    },
                );
                apply(order, &Input::Tcm(&answer), NOW + 30);
            }
        }
    }

    fn deliveries(actions: &[Action]) -> Vec<&str> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::DeliverSims { item_id, .. } => Some(item_id.as_str()),
                _ => None,
            })
            .collect()
    }

    fn activations(actions: &[Action]) -> Vec<&str> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::ActivateSubscription { item_id, .. } => Some(item_id.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_frozen_basket_becomes_an_acknowledged_order_asking_for_the_amount_due_now() {
        let order = two_lines();
        assert_eq!(order.state, OrderState::Acknowledged);
        assert_eq!(order.order_id, "b1");
        assert_eq!(order.customer_id, "alice");
        // Two lines: activation 99.00 + first month 149.00 + two cards 40.00 each.
        assert_eq!(order.payment.amount_minor, 2 * (9900 + 14900 + 4000));
        assert_eq!(order.items.len(), 2);
        assert_eq!(order.items[0].new_number.as_deref(), Some("+4520000001"));
        assert_eq!(
            order.items[1].new_number, None,
            "a port-in needs no pool number"
        );
        assert_eq!(order.items[0].add_ons[0].quantity, 2);
        assert!(
            order.items[1]
                .characteristics
                .contains(&("numberType".into(), "portIn".into()))
        );
        assert_eq!(
            start(&order, "https://shop/return"),
            [Action::CreatePayment {
                amount_minor: 2 * (9900 + 14900 + 4000),
                return_url: "https://shop/return".into()
            }]
        );
        assert_eq!(order.next_deadline(), Some(FREEZE));
    }

    #[test]
    fn the_happy_path_authorises_confirms_the_numbers_then_captures() {
        let mut order = two_lines();
        assert!(pay(&mut order, PaymentState::AwaitingShopper).is_empty());
        assert_eq!(order.state, OrderState::Pending);
        assert_eq!(order.payment.client_secret.as_deref(), Some("pi_1_secret"));
        let actions = pay(&mut order, PaymentState::Authorized);
        assert_eq!(order.state, OrderState::InProgress);
        assert_eq!(
            actions,
            [Action::ConfirmNumber {
                msisdn: "+4520000001".into()
            }]
        );
        let actions = apply(
            &mut order,
            &Input::NumberConfirmed {
                msisdn: "+4520000001",
            },
            NOW + 20,
        );
        assert_eq!(
            actions,
            [Action::CapturePayment {
                reference: "pi_1".into(),
                amount_minor: order.payment.amount_minor
            }]
        );
        // Captured: the SIMs are obtained, then the subscriptions created in TCM with their
        // ICCIDs, then the order is complete.
        let asked = pay(&mut order, PaymentState::Captured);
        assert_eq!(deliveries(&asked), ["l1", "l2"]);
        assert_eq!(
            asked[0],
            Action::DeliverSims {
                item_id: "l1".into(),
                psim: false,
                sims: 3,
                line: true,
            },
            "the line's eSIM and one per data-sharing card"
        );
        assert_eq!(
            order.step(StepName::SimDelivery).state,
            StepState::InProgress
        );
        assert_eq!(order.step(StepName::Activation).state, StepState::Waiting);
        let asked = sims_ready(&mut order, &asked);
        assert_eq!(order.step(StepName::SimDelivery).state, StepState::Done);
        // The port-in's number is brought over before TCM creates the subscriptions.
        assert!(activations(&asked).is_empty(), "{asked:?}");
        assert!(matches!(&asked[..], [Action::SubmitPort { item_id, .. }] if item_id == "l2"));
        assert_eq!(order.step(StepName::Porting).state, StepState::InProgress);
        let asked = ported(&mut order, &asked);
        assert_eq!(order.step(StepName::Porting).state, StepState::Done);
        assert_eq!(activations(&asked), ["l1", "l2"]);
        let Action::ActivateSubscription {
            iccid,
            shared_data_sims,
            binding_end_date,
            ..
        } = &asked[0]
        else {
            panic!("{asked:?}")
        };
        assert_eq!(iccid.as_deref(), Some("8945l10"));
        assert_eq!(shared_data_sims, &["8945l11", "8945l12"]);
        assert_eq!(binding_end_date.as_deref(), Some("2027-07-15"));
        assert!(
            order.items[0]
                .characteristics
                .contains(&("ICCID".into(), "8945l10".into()))
        );
        assert_eq!(order.state, OrderState::InProgress);
        assert_eq!(
            order.step(StepName::Activation).state,
            StepState::InProgress
        );
        activated_in_tcm(&mut order, &asked[..1]);
        assert_eq!(order.state, OrderState::InProgress, "one of two activated");
        activated_in_tcm(&mut order, &asked[1..]);
        assert_eq!(order.state, OrderState::Completed);
        assert!(order.items.iter().all(|i| i.state == OrderState::Completed));
        assert!(order.steps.iter().all(|s| s.state == StepState::Done));
        assert!(
            order.items[0]
                .characteristics
                .contains(&("tcmSubscriptionId".into(), "S-l1".into()))
        );
        assert_eq!(order.next_deadline(), None);
    }

    #[test]
    fn duplicate_and_stale_reports_change_nothing() {
        let mut order = two_lines();
        pay(&mut order, PaymentState::AwaitingShopper);
        pay(&mut order, PaymentState::Authorized);
        let settled = order.clone();
        assert!(pay(&mut order, PaymentState::Authorized).is_empty());
        assert!(pay(&mut order, PaymentState::AwaitingShopper).is_empty());
        assert!(pay(&mut order, PaymentState::Refused).is_empty());
        assert_eq!(order, settled);
        // A report of another attempt is not this payment's.
        let mut other = report(PaymentState::Canceled);
        other.attempt = 2;
        assert!(apply(&mut order, &Input::Payment(&other), NOW).is_empty());
        assert_eq!(order, settled, "not even the version's inputs change");
    }

    #[test]
    fn the_same_report_delivered_again_is_applied_once() {
        let mut order = two_lines();
        let refused = report(PaymentState::Refused);
        apply(&mut order, &Input::Payment(&refused), NOW);
        pay(&mut order, PaymentState::RequiresAction);
        // The refusal's event arrives again after the shopper's retry began: not a new
        // refusal (without the id it would count, a refusal may follow a 3-D Secure step).
        apply(&mut order, &Input::Payment(&refused), NOW);
        assert_eq!(order.payment.state, Some(PaymentState::RequiresAction));
    }

    #[test]
    fn a_refusal_keeps_the_order_open_for_another_try_until_the_window_ends() {
        let mut order = two_lines();
        pay(&mut order, PaymentState::AwaitingShopper);
        assert!(pay(&mut order, PaymentState::Refused).is_empty());
        assert_eq!(order.state, OrderState::Pending);
        assert_eq!(order.payment.last_refusal.as_deref(), Some("card_declined"));
        // Nothing happens before the window ends.
        assert!(apply(&mut order, &Input::Tick, FREEZE - 1).is_empty());
        let actions = apply(&mut order, &Input::Tick, FREEZE);
        assert_eq!(order.state, OrderState::Failed);
        assert_eq!(
            actions,
            [
                Action::CancelPayment {
                    reference: "pi_1".into()
                },
                Action::ReleaseNumber {
                    msisdn: "+4520000001".into()
                }
            ]
        );
        assert!(order.items.iter().all(|i| i.state == OrderState::Failed));
        assert_eq!(order.next_deadline(), None);
    }

    #[test]
    fn a_retry_after_a_refusal_can_still_pay() {
        let mut order = two_lines();
        pay(&mut order, PaymentState::Refused);
        pay(&mut order, PaymentState::RequiresAction);
        assert_eq!(order.state, OrderState::Pending);
        // The 3-D Secure step failed: refused again, still open.
        pay(&mut order, PaymentState::Refused);
        assert_eq!(order.state, OrderState::Pending);
        pay(&mut order, PaymentState::Authorized);
        assert_eq!(order.state, OrderState::InProgress);
    }

    #[test]
    fn a_lost_number_fails_its_item_and_the_rest_is_captured_as_partial() {
        let mut order = order(vec![
            line("l1", new_number("+4520000001")),
            line("l2", new_number("+4520000002")),
        ]);
        pay(&mut order, PaymentState::Authorized);
        apply(
            &mut order,
            &Input::NumberRefused {
                msisdn: "+4520000001",
                reason: "reservation_lost",
            },
            NOW,
        );
        assert_eq!(order.items[0].state, OrderState::Failed);
        let actions = apply(
            &mut order,
            &Input::NumberConfirmed {
                msisdn: "+4520000002",
            },
            NOW,
        );
        assert_eq!(
            actions,
            [Action::CapturePayment {
                reference: "pi_1".into(),
                amount_minor: 9900 + 14900 + 4000
            }]
        );
        let asked = pay(&mut order, PaymentState::Captured);
        assert_eq!(
            deliveries(&asked),
            ["l2"],
            "only the item that is delivered"
        );
        activated_in_tcm(&mut order, &asked);
        assert_eq!(order.state, OrderState::Partial);
        assert_eq!(order.items[0].state, OrderState::Failed);
        assert_eq!(order.items[1].state, OrderState::Completed);
    }

    #[test]
    fn no_number_confirmed_in_time_fails_the_order_and_voids_the_payment() {
        let mut order = order(vec![line("l1", new_number("+4520000001"))]);
        pay(&mut order, PaymentState::Authorized);
        let deadline = order.next_deadline().unwrap();
        assert_eq!(deadline, NOW + 10 + NUMBER_CONFIRMATION_TIMEOUT_MS);
        assert!(apply(&mut order, &Input::Tick, deadline - 1).is_empty());
        let actions = apply(&mut order, &Input::Tick, deadline);
        assert_eq!(order.state, OrderState::Failed);
        assert_eq!(
            actions,
            [
                Action::CancelPayment {
                    reference: "pi_1".into()
                },
                Action::ReleaseNumber {
                    msisdn: "+4520000001".into()
                }
            ]
        );
    }

    #[test]
    fn an_unconfirmed_capture_is_asked_again_then_held() {
        let mut order = two_lines();
        pay(&mut order, PaymentState::Authorized);
        apply(
            &mut order,
            &Input::NumberConfirmed {
                msisdn: "+4520000001",
            },
            NOW,
        );
        for _ in 1..MAX_CAPTURE_REQUESTS {
            let due = order.next_deadline().unwrap();
            let actions = apply(&mut order, &Input::Tick, due);
            assert!(matches!(actions[..], [Action::CapturePayment { .. }]));
        }
        let due = order.next_deadline().unwrap();
        assert!(apply(&mut order, &Input::Tick, due).is_empty());
        assert_eq!(order.state, OrderState::Held);
    }

    #[test]
    fn cancelling_before_payment_voids_it_and_releases_the_numbers() {
        let mut order = two_lines();
        pay(&mut order, PaymentState::AwaitingShopper);
        let mut actions = Vec::new();
        assert_eq!(
            cancel(&mut order, None, NOW, &mut actions),
            CancelAnswer::Accepted
        );
        assert_eq!(order.state, OrderState::PendingCancellation);
        assert_eq!(
            actions,
            [
                Action::ReleaseNumber {
                    msisdn: "+4520000001".into()
                },
                Action::CancelPayment {
                    reference: "pi_1".into()
                }
            ]
        );
        pay(&mut order, PaymentState::Canceled);
        assert_eq!(order.state, OrderState::Cancelled);
        assert!(order.items.iter().all(|i| i.state == OrderState::Cancelled));
    }

    #[test]
    fn cancelling_before_the_payment_exists_voids_it_when_it_is_reported() {
        let mut order = two_lines();
        let mut actions = Vec::new();
        cancel(&mut order, Some("changed my mind"), NOW, &mut actions);
        assert_eq!(order.state, OrderState::Cancelled);
        let late = pay(&mut order, PaymentState::AwaitingShopper);
        assert_eq!(
            late,
            [Action::CancelPayment {
                reference: "pi_1".into()
            }]
        );
        assert_eq!(order.state, OrderState::Cancelled);
    }

    #[test]
    fn after_completion_a_cancellation_is_assessed_and_a_final_order_refuses() {
        let mut order = order(vec![line(
            "l1",
            LineNumber::PortIn {
                msisdn: "+4520000009".into(),
                current_operator: "TDC".into(),
                sim_icc: None,
                desired_port_date: None,
                pac: None,
            },
        )]);
        let actions = pay(&mut order, PaymentState::Authorized);
        assert!(
            matches!(actions[..], [Action::CapturePayment { .. }]),
            "no number to confirm: straight to capture"
        );
        let asked = pay(&mut order, PaymentState::Captured);
        activated_in_tcm(&mut order, &asked);
        assert_eq!(order.state, OrderState::Completed);
        let mut actions = Vec::new();
        assert_eq!(
            cancel(&mut order, None, NOW, &mut actions),
            CancelAnswer::Assessing
        );
        assert_eq!(order.state, OrderState::AssessingCancellation);
        assert!(actions.is_empty(), "an agent decides about the money");
        let mut failed = two_lines();
        apply(&mut failed, &Input::Tick, FREEZE);
        assert_eq!(
            cancel(&mut failed, None, NOW, &mut Vec::new()),
            CancelAnswer::TooLate
        );
    }

    #[test]
    fn cancelling_while_the_capture_runs_refunds_what_was_captured() {
        let mut order = two_lines();
        pay(&mut order, PaymentState::Authorized);
        let mut actions = Vec::new();
        cancel(&mut order, None, NOW, &mut actions);
        assert_eq!(order.state, OrderState::PendingCancellation);
        assert!(actions.contains(&Action::CancelPayment {
            reference: "pi_1".into()
        }));
        // The capture won the race at the provider: the money goes back.
        let mut captured = report(PaymentState::Captured);
        captured.amount_minor = 1234;
        let refund = apply(&mut order, &Input::Payment(&captured), NOW);
        assert_eq!(
            refund,
            [Action::RefundPayment {
                reference: "pi_1".into(),
                amount_minor: 1234
            }]
        );
        pay(&mut order, PaymentState::Refunded);
        assert_eq!(order.state, OrderState::Cancelled);
    }

    fn refused_request(operation: &str) -> PaymentEvent {
        PaymentEvent {
            event_id: format!("b1:1:{operation}"),
            cause: format!("b1:1:{operation}"),
            ..report(PaymentState::Error)
        }
    }

    #[test]
    fn a_refused_capture_holds_the_order_for_an_operator_and_a_late_capture_completes_it() {
        let mut order = two_lines();
        pay(&mut order, PaymentState::Authorized);
        apply(
            &mut order,
            &Input::NumberConfirmed {
                msisdn: "+4520000001",
            },
            NOW,
        );
        let actions = apply(
            &mut order,
            &Input::Payment(&refused_request("capture")),
            NOW,
        );
        assert!(actions.is_empty());
        assert_eq!(order.state, OrderState::Held);
        assert_eq!(
            order.payment.state,
            Some(PaymentState::Authorized),
            "not poisoned"
        );
        assert!(
            order
                .payment
                .last_error
                .as_deref()
                .unwrap()
                .starts_with("capture")
        );
        // Captured by hand at the provider: the report moves the order on to activation.
        let asked = pay(&mut order, PaymentState::Captured);
        activated_in_tcm(&mut order, &asked);
        assert_eq!(order.state, OrderState::Completed);
    }

    #[test]
    fn a_provider_that_captured_by_itself_still_waits_for_the_numbers_and_refunds_what_failed() {
        let mut order = order(vec![
            line("l1", new_number("+4520000001")),
            line("l2", new_number("+4520000002")),
        ]);
        let mut captured = report(PaymentState::Captured);
        captured.amount_minor = order.payment.amount_minor;
        let actions = apply(&mut order, &Input::Payment(&captured), NOW);
        assert_eq!(order.state, OrderState::InProgress, "numbers first");
        assert_eq!(actions.len(), 2, "{actions:?}");
        apply(
            &mut order,
            &Input::NumberRefused {
                msisdn: "+4520000001",
                reason: "reservation_lost",
            },
            NOW,
        );
        let actions = apply(
            &mut order,
            &Input::NumberConfirmed {
                msisdn: "+4520000002",
            },
            NOW,
        );
        assert_eq!(
            actions[0],
            Action::RefundPayment {
                reference: "pi_1".into(),
                amount_minor: 9900 + 14900 + 4000
            }
        );
        assert_eq!(deliveries(&actions), ["l2"]);
        activated_in_tcm(&mut order, &actions);
        assert_eq!(order.state, OrderState::Partial);
    }

    #[test]
    fn an_authorisation_after_the_order_failed_is_voided_even_after_a_void() {
        let mut order = two_lines();
        pay(&mut order, PaymentState::AwaitingShopper);
        apply(&mut order, &Input::Tick, FREEZE);
        assert_eq!(order.state, OrderState::Failed);
        pay(&mut order, PaymentState::Canceled);
        // Adyen: the session was paid at the last moment.
        let mut late = report(PaymentState::Authorized);
        late.reference = "psp_9".into();
        let actions = apply(&mut order, &Input::Payment(&late), NOW);
        assert_eq!(
            actions,
            [Action::CancelPayment {
                reference: "psp_9".into()
            }]
        );
        assert_eq!(order.state, OrderState::Failed);
        // The same report again: nothing more.
        assert!(apply(&mut order, &Input::Payment(&late), NOW).is_empty());
    }

    #[test]
    fn an_unconfirmed_void_is_asked_again_then_held() {
        let mut order = two_lines();
        pay(&mut order, PaymentState::AwaitingShopper);
        let mut actions = Vec::new();
        cancel(&mut order, None, NOW, &mut actions);
        for _ in 1..MAX_CANCELLATION_REQUESTS {
            let due = order.next_deadline().expect("a cancellation deadline");
            let again = apply(&mut order, &Input::Tick, due);
            assert_eq!(
                again,
                [Action::CancelPayment {
                    reference: "pi_1".into()
                }]
            );
        }
        let due = order.next_deadline().unwrap();
        assert!(apply(&mut order, &Input::Tick, due).is_empty());
        assert_eq!(order.state, OrderState::Held);
    }

    #[test]
    fn a_stale_report_after_a_3ds_step_changes_nothing_and_the_step_says_why() {
        let mut order = two_lines();
        pay(&mut order, PaymentState::RequiresAction);
        assert_eq!(
            order.step(StepName::Payment).detail.as_deref(),
            Some("3-D Secure step")
        );
        let before = order.clone();
        let mut stale = report(PaymentState::AwaitingShopper);
        stale.event_id = "created-late".into();
        assert!(apply(&mut order, &Input::Payment(&stale), NOW).is_empty());
        assert_eq!(order, before, "a report of an earlier state is stale");
        pay(&mut order, PaymentState::Refused);
        assert!(
            order
                .step(StepName::Payment)
                .detail
                .as_deref()
                .unwrap()
                .starts_with("refused: card_declined")
        );
    }

    #[test]
    fn a_payment_cancelled_at_the_provider_fails_the_order_and_frees_its_numbers() {
        let mut order = two_lines();
        pay(&mut order, PaymentState::AwaitingShopper);
        let actions = pay(&mut order, PaymentState::Canceled);
        assert_eq!(order.state, OrderState::Failed);
        assert_eq!(
            actions,
            [Action::ReleaseNumber {
                msisdn: "+4520000001".into()
            }]
        );
        // A later report of another final state does not replace the first one.
        let mut refunded = report(PaymentState::Refunded);
        refunded.event_id = "refunded-late".into();
        apply(&mut order, &Input::Payment(&refunded), NOW);
        assert_eq!(order.payment.state, Some(PaymentState::Canceled));
    }

    #[test]
    fn cancelling_an_order_the_provider_captured_by_itself_refunds_it() {
        let mut order = two_lines();
        let mut captured = report(PaymentState::Captured);
        captured.amount_minor = 5000;
        apply(&mut order, &Input::Payment(&captured), NOW);
        assert_eq!(order.state, OrderState::InProgress);
        let mut actions = Vec::new();
        cancel(&mut order, None, NOW, &mut actions);
        assert!(
            actions.contains(&Action::RefundPayment {
                reference: "pi_1".into(),
                amount_minor: 5000
            }),
            "{actions:?}"
        );
        assert_eq!(order.state, OrderState::PendingCancellation);
    }

    #[test]
    fn an_authorisation_after_the_cancellation_was_asked_is_voided() {
        let mut order = two_lines();
        pay(&mut order, PaymentState::AwaitingShopper);
        cancel(&mut order, None, NOW, &mut Vec::new());
        assert_eq!(order.state, OrderState::PendingCancellation);
        let mut authorised = report(PaymentState::Authorized);
        authorised.reference = "psp_2".into();
        let actions = apply(&mut order, &Input::Payment(&authorised), NOW);
        assert_eq!(
            actions,
            [Action::CancelPayment {
                reference: "psp_2".into()
            }]
        );
    }

    #[test]
    fn a_refused_payment_creation_fails_the_order() {
        let mut order = two_lines();
        let actions = apply(&mut order, &Input::Payment(&refused_request("create")), NOW);
        assert_eq!(order.state, OrderState::Failed);
        assert!(
            order
                .state_reason
                .as_deref()
                .unwrap()
                .contains("card_declined")
        );
        assert!(actions.contains(&Action::ReleaseNumber {
            msisdn: "+4520000001".into()
        }));
    }

    #[test]
    fn changes_report_each_state_item_and_step_once() {
        let before = two_lines();
        let created = changes(None, &before);
        assert!(matches!(
            &created[0],
            OrderEventPayload::OrderStateChanged(OrderStateChanged {
                from: None,
                to: OrderState::Acknowledged,
                ..
            })
        ));
        assert_eq!(
            created.len(),
            1 + 2 + 6,
            "the order, two items, six steps (porting for the port-in)"
        );
        let mut after = before.clone();
        pay(&mut after, PaymentState::Authorized);
        let kinds: Vec<String> = changes(Some(&before), &after)
            .iter()
            .map(|e| match e {
                OrderEventPayload::OrderStateChanged(s) => format!("order:{}", s.to.as_str()),
                OrderEventPayload::OrderItemStateChanged(i) => {
                    format!("item:{}:{}", i.item_id, i.to.as_str())
                }
                OrderEventPayload::OrderStepChanged(s) => format!("step:{}:{}", s.step, s.state),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "order:inProgress",
                "item:l1:inProgress",
                "item:l2:inProgress",
                "step:payment:done",
                "step:number_confirmation:in_progress"
            ]
        );
        assert!(changes(Some(&after), &after).is_empty());
    }

    const OWNER_TIMEOUT: i64 = 600_000;

    fn danish_policy(hold_on_failure: bool) -> OwnerPolicy {
        OwnerPolicy {
            min_assurance: Assurance::Substantial,
            min_age: 18,
            hold_on_failure,
            timeout_ms: OWNER_TIMEOUT,
        }
    }

    fn needing_owner(hold_on_failure: bool) -> Order {
        let mut order = order(vec![line("l1", new_number("+4520000001"))]);
        require_owner(&mut order, danish_policy(hold_on_failure));
        order
    }

    fn verification(assurance: &str, of_age: bool) -> VerifyOwner {
        VerifyOwner {
            assurance: assurance.into(),
            of_age,
            identity_provider: Some("mitid".into()),
            cpr_sealed: Some("pd1.cpr".into()),
            name_sealed: Some("pd1.name".into()),
            refusal: None,
        }
    }

    fn verify(order: &mut Order, v: &VerifyOwner) -> Vec<Action> {
        apply(order, &Input::OwnerVerification(v), NOW + 20)
    }

    fn step_state(order: &Order, name: StepName) -> StepState {
        order.step(name).state
    }

    #[test]
    fn a_paid_order_waits_for_its_owner_before_numbers_and_capture() {
        let mut order = needing_owner(false);
        let names: Vec<&str> = order.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "payment",
                "identity",
                "number_confirmation",
                "capture",
                "sim_delivery",
                "activation"
            ]
        );
        let actions = pay(&mut order, PaymentState::Authorized);
        assert!(
            actions.is_empty(),
            "nothing confirmed or captured: {actions:?}"
        );
        assert_eq!(order.state, OrderState::InProgress);
        assert_eq!(
            step_state(&order, StepName::NumberConfirmation),
            StepState::Waiting
        );
        assert_eq!(
            order.step(StepName::Identity).deadline,
            Some(NOW + 10 + OWNER_TIMEOUT)
        );
        let actions = verify(&mut order, &verification("substantial", true));
        assert_eq!(
            actions,
            [Action::ConfirmNumber {
                msisdn: "+4520000001".into()
            }]
        );
        assert_eq!(step_state(&order, StepName::Identity), StepState::Done);
        let owner = order.owner.as_ref().unwrap();
        assert_eq!(owner.assurance, Assurance::Substantial);
        assert_eq!(owner.cpr_sealed.as_deref(), Some("pd1.cpr"));
        // A second verification changes nothing.
        let again = order.clone();
        assert!(verify(&mut order, &verification("high", true)).is_empty());
        assert_eq!(order, again);
    }

    #[test]
    fn an_owner_verified_before_payment_lets_the_payment_go_straight_on() {
        let mut order = needing_owner(false);
        assert!(verify(&mut order, &verification("high", true)).is_empty());
        assert_eq!(order.state, OrderState::Acknowledged, "still unpaid");
        let actions = pay(&mut order, PaymentState::Authorized);
        assert_eq!(
            actions,
            [Action::ConfirmNumber {
                msisdn: "+4520000001".into()
            }]
        );
    }

    #[test]
    fn an_under_age_or_low_assurance_owner_fails_the_order_and_gives_everything_back() {
        for (assurance, of_age, code) in [
            ("substantial", false, "owner_under_age"),
            ("low", true, "assurance_too_low"),
        ] {
            let mut order = needing_owner(false);
            pay(&mut order, PaymentState::Authorized);
            let actions = verify(&mut order, &verification(assurance, of_age));
            assert_eq!(order.state, OrderState::Failed, "{code}");
            assert!(order.state_reason.as_deref().unwrap().contains(code));
            assert_eq!(order.step(StepName::Identity).detail.as_deref(), Some(code));
            assert_eq!(order.owner, None);
            assert_eq!(
                actions,
                [
                    Action::CancelPayment {
                        reference: "pi_1".into()
                    },
                    Action::ReleaseNumber {
                        msisdn: "+4520000001".into()
                    }
                ]
            );
        }
    }

    #[test]
    fn a_refusal_named_by_the_ingress_fails_the_order_even_when_the_flags_look_fine() {
        let mut order = needing_owner(false);
        let mut v = verification("high", true);
        v.refusal = Some("owner_under_age".into());
        verify(&mut order, &v);
        assert_eq!(order.state, OrderState::Failed);
    }

    #[test]
    fn a_shop_that_holds_on_failure_keeps_the_order_for_an_agent() {
        let mut order = needing_owner(true);
        pay(&mut order, PaymentState::Authorized);
        let actions = verify(&mut order, &verification("low", true));
        assert!(
            actions.is_empty(),
            "nothing voided or released: {actions:?}"
        );
        assert_eq!(order.state, OrderState::Held);
        assert_eq!(step_state(&order, StepName::Identity), StepState::Failed);
    }

    #[test]
    fn an_owner_who_never_verifies_ends_the_order_when_the_step_times_out() {
        let mut order = needing_owner(false);
        pay(&mut order, PaymentState::Authorized);
        let due = order.next_deadline().unwrap();
        assert_eq!(due, NOW + 10 + OWNER_TIMEOUT);
        assert!(apply(&mut order, &Input::Tick, due - 1).is_empty());
        assert_eq!(order.state, OrderState::InProgress);
        let actions = apply(&mut order, &Input::Tick, due);
        assert_eq!(order.state, OrderState::Failed);
        assert_eq!(
            order.step(StepName::Identity).detail.as_deref(),
            Some("owner_not_verified_in_time")
        );
        assert_eq!(actions.len(), 2, "void and release: {actions:?}");
    }

    #[test]
    fn an_order_without_a_policy_ignores_verifications() {
        let mut order = two_lines();
        let before = order.clone();
        assert!(verify(&mut order, &verification("high", true)).is_empty());
        assert_eq!(order, before);
    }

    fn captured_two_lines() -> (Order, Vec<Action>) {
        let mut order = two_lines();
        pay(&mut order, PaymentState::Authorized);
        apply(
            &mut order,
            &Input::NumberConfirmed {
                msisdn: "+4520000001",
            },
            NOW,
        );
        let asked = pay(&mut order, PaymentState::Captured);
        let asked = sims_ready(&mut order, &asked);
        let asked = ported(&mut order, &asked);
        (order, asked)
    }

    #[test]
    fn a_tcm_outage_is_shown_on_the_step_and_the_order_waits_without_a_deadline() {
        let (mut order, asked) = captured_two_lines();
        assert_eq!(activations(&asked).len(), 2);
        let delayed = TcmEventPayload::ActivationDelayed(tcom_schemas::tcm::ActivationDelayed {
            item_id: "l1".into(),
            reason: "TCM unavailable: 503".into(),
        });
        apply(&mut order, &Input::Tcm(&delayed), NOW + 40);
        assert_eq!(order.state, OrderState::InProgress);
        assert_eq!(
            order.step(StepName::Activation).detail.as_deref(),
            Some("TCM unavailable: 503")
        );
        assert_eq!(order.next_deadline(), None, "never failed for TCM's sake");
        activated_in_tcm(&mut order, &asked);
        assert_eq!(order.state, OrderState::Completed);
        assert_eq!(order.step(StepName::Activation).detail, None);
        // A late duplicate changes nothing.
        let before = order.clone();
        activated_in_tcm(&mut order, &asked);
        assert_eq!(order, before);
    }

    #[test]
    fn a_subscription_tcm_refuses_holds_the_paid_order_for_an_agent() {
        let (mut order, _) = captured_two_lines();
        let captured = order.payment.captured_minor;
        let refused = TcmEventPayload::ActivationRefused(tcom_schemas::tcm::ActivationRefused {
            item_id: "l2".into(),
            code: "TCM-4091".into(),
            reason: "MSISDN already active".into(),
        });
        apply(&mut order, &Input::Tcm(&refused), NOW + 40);
        assert_eq!(order.state, OrderState::Held);
        assert!(order.state_reason.as_deref().unwrap().contains("TCM-4091"));
        assert_eq!(order.step(StepName::Activation).state, StepState::Failed);
        assert_eq!(order.payment.captured_minor, captured, "nothing undone");
    }

    fn psim_order() -> Order {
        let mut psim = line("l1", new_number("+4520000001"));
        psim.sim_type = SimType::Psim;
        psim.add_ons.clear();
        order(vec![psim])
    }

    fn captured(order: &mut Order) -> Vec<Action> {
        pay(order, PaymentState::Authorized);
        apply(
            order,
            &Input::NumberConfirmed {
                msisdn: "+4520000001",
            },
            NOW,
        );
        pay(order, PaymentState::Captured)
    }

    fn shipment_created() -> SimEventPayload {
        SimEventPayload::ShipmentCreated(tcom_schemas::sim::ShipmentCreated {
            item_id: "l1".into(),
            shipment_id: "SHP1".into(),
            tracking_number: "TRK1".into(),
            iccids: vec!["8945000000000000011".into()],
        })
    }

    fn tracked(order: &mut Order, status: &str, sequence: i64) -> Vec<Action> {
        let report = SimEventPayload::ShipmentTracked(tcom_schemas::sim::ShipmentTracked {
            item_id: "l1".into(),
            shipment_id: "SHP1".into(),
            status: status.into(),
            sequence,
        });
        apply(order, &Input::Sim(&report), NOW + 100 + sequence)
    }

    #[test]
    fn a_psim_is_shipped_once_activated_with_its_iccid_and_completed_when_delivered() {
        let mut order = psim_order();
        let asked = captured(&mut order);
        assert_eq!(
            asked,
            [Action::DeliverSims {
                item_id: "l1".into(),
                psim: true,
                sims: 1,
                line: true,
            }]
        );
        let asked = apply(&mut order, &Input::Sim(&shipment_created()), NOW + 10);
        assert_eq!(activations(&asked), ["l1"], "the ICCID is known: activate");
        assert!(matches!(
            &asked[0],
            Action::ActivateSubscription { iccid: Some(i), .. } if i == "8945000000000000011"
        ));
        let before = order.clone();
        assert!(apply(&mut order, &Input::Sim(&shipment_created()), NOW + 11).is_empty());
        assert_eq!(order, before, "a repeated report changes nothing");
        activated_in_tcm(&mut order, &asked);
        assert_eq!(order.state, OrderState::InProgress, "not delivered yet");
        assert_eq!(order.items[0].state, OrderState::InProgress);
        assert_eq!(order.step(StepName::Activation).state, StepState::Done);
        assert_eq!(
            order.step(StepName::SimDelivery).state,
            StepState::InProgress
        );
        tracked(&mut order, "shipped", 1);
        assert!(
            order.items[0]
                .characteristics
                .contains(&("shipmentStatus".into(), "shipped".into()))
        );
        assert_eq!(order.state, OrderState::InProgress);
        tracked(&mut order, "delivered", 3);
        let done = order.clone();
        tracked(&mut order, "shipped", 2);
        assert_eq!(order, done, "an older tracking event is ignored");
        assert_eq!(order.state, OrderState::Completed);
        assert_eq!(order.items[0].state, OrderState::Completed);
        assert!(order.steps.iter().all(|s| s.state == StepState::Done));
    }

    #[test]
    fn a_returned_sim_holds_the_order_and_a_later_event_does_not_revive_it() {
        let mut order = psim_order();
        captured(&mut order);
        let asked = apply(&mut order, &Input::Sim(&shipment_created()), NOW + 10);
        activated_in_tcm(&mut order, &asked);
        tracked(&mut order, "shipped", 1);
        tracked(&mut order, "returned", 2);
        assert_eq!(order.state, OrderState::Held);
        assert_eq!(order.items[0].state, OrderState::Held);
        assert!(order.state_reason.as_deref().unwrap().contains("came back"));
        assert_eq!(order.step(StepName::SimDelivery).state, StepState::Failed);
        tracked(&mut order, "delivered", 3);
        assert_eq!(order.state, OrderState::Held);
        assert_eq!(order.completion_date, None);
    }

    #[test]
    fn a_sim_provider_outage_waits_and_its_refusal_holds_the_paid_order() {
        let mut order = two_lines();
        pay(&mut order, PaymentState::Authorized);
        apply(
            &mut order,
            &Input::NumberConfirmed {
                msisdn: "+4520000001",
            },
            NOW,
        );
        pay(&mut order, PaymentState::Captured);
        let captured = order.payment.captured_minor;
        let delayed = SimEventPayload::SimDeliveryDelayed(tcom_schemas::sim::SimDeliveryDelayed {
            item_id: "l1".into(),
            reason: "SM-DP+ unavailable: 503".into(),
        });
        apply(&mut order, &Input::Sim(&delayed), NOW + 10);
        assert_eq!(
            order.step(StepName::SimDelivery).detail.as_deref(),
            Some("SM-DP+ unavailable: 503")
        );
        assert_eq!(
            order.next_deadline(),
            None,
            "never failed for the provider's sake"
        );
        let refused = SimEventPayload::SimDeliveryRefused(tcom_schemas::sim::SimDeliveryRefused {
            item_id: "l2".into(),
            code: "8.2.1/3.9".into(),
            reason: "Profile ICCID unknown".into(),
        });
        assert!(apply(&mut order, &Input::Sim(&refused), NOW + 20).is_empty());
        assert_eq!(order.state, OrderState::Held);
        assert!(order.state_reason.as_deref().unwrap().contains("8.2.1/3.9"));
        assert_eq!(order.step(StepName::SimDelivery).state, StepState::Failed);
        assert_eq!(order.payment.captured_minor, captured, "nothing undone");
    }

    fn submitted_port() -> (Order, Vec<Action>) {
        let mut order = order(vec![line(
            "l2",
            LineNumber::PortIn {
                msisdn: "+4520000002".into(),
                current_operator: "TDC".into(),
                sim_icc: Some("8945020000000000004".into()),
                desired_port_date: None,
                pac: None,
            },
        )]);
        order.country = Some("DK".into());
        pay(&mut order, PaymentState::Authorized);
        let asked = pay(&mut order, PaymentState::Captured);
        let asked = sims_ready(&mut order, &asked);
        (order, asked)
    }

    fn correction(item: &str) -> CorrectPortIn {
        CorrectPortIn {
            item_id: item.into(),
            current_operator: None,
            sim_icc: None,
            pac: None,
            desired_port_date: None,
        }
    }

    fn rejected(order: &mut Order, porting_id: &str, code: &str) {
        use tcom_schemas::porting::*;
        let report = PortingEventPayload::PortRejected(PortRejected {
            item_id: "l2".into(),
            porting_id: porting_id.into(),
            code: code.into(),
            reason: "the losing operator says no".into(),
        });
        apply(order, &Input::Porting(&report), NOW + 30);
    }

    #[test]
    fn a_port_in_is_submitted_after_the_sims_for_the_earliest_danish_working_day() {
        let (order, asked) = submitted_port();
        let [
            Action::SubmitPort {
                item_id,
                attempt,
                sim_icc,
                requested_date,
                current_operator,
                ..
            },
        ] = &asked[..]
        else {
            panic!("{asked:?}")
        };
        assert_eq!((item_id.as_str(), *attempt), ("l2", 1));
        // NOW is Friday 15 January 2027 in Denmark: the next working day is Monday the 18th.
        assert_eq!(requested_date, "2027-01-18");
        assert_eq!(sim_icc.as_deref(), Some("8945020000000000004"));
        assert_eq!(current_operator, "TDC");
        assert_eq!(order.step(StepName::Porting).state, StepState::InProgress);
        assert_eq!(order.step(StepName::Activation).state, StepState::Waiting);
        assert_eq!(
            order.next_deadline(),
            None,
            "no deadline while the clearing house does not have it"
        );
    }

    #[test]
    fn a_rejected_port_holds_the_order_until_the_customer_corrects_it() {
        use tcom_schemas::porting::*;
        let (mut order, _) = submitted_port();
        let shows = |order: &Order, name: &str, value: &str| {
            order.items[0]
                .characteristics
                .contains(&(name.to_owned(), value.to_owned()))
        };
        assert!(shows(&order, "portStatus", "submitting"));
        port_answers(&mut order, "l2", 1, "P1", false);
        assert!(shows(&order, "portStatus", "submitted"));
        assert!(shows(&order, "portingId", "P1"));
        assert_eq!(order.next_deadline(), Some(NOW + 48 * 3_600_000));
        rejected(&mut order, "P1", "wrong_icc");
        assert!(shows(&order, "portStatus", "rejected"));
        assert!(shows(&order, "portRejection", "wrong_icc"));
        assert!(shows(&order, "portCorrectable", "sim_icc"));
        assert_eq!(order.state, OrderState::Held);
        assert_eq!(order.items[0].state, OrderState::Held);
        let reason = order.state_reason.clone().unwrap();
        assert!(reason.contains("may correct sim_icc"), "{reason}");
        assert_eq!(order.next_deadline(), None, "the customer takes their time");

        // Corrections that break the rules, or of another item, change nothing.
        let before = order.clone();
        let mut actions = Vec::new();
        let bad = CorrectPortIn {
            sim_icc: Some("8945".into()),
            pac: Some("ABC123456".into()),
            ..correction("l2")
        };
        let Err(CorrectionRefusal::Invalid(violations)) =
            correct_port_in(&mut order, &bad, NOW + 40, &mut actions)
        else {
            panic!("refused")
        };
        let codes: Vec<&str> = violations.iter().map(|v| v.code.as_str()).collect();
        assert_eq!(codes, ["invalid_sim_icc", "pac_not_used"]);
        assert_eq!(
            correct_port_in(&mut order, &correction("l1"), NOW + 40, &mut actions),
            Err(CorrectionRefusal::UnknownItem)
        );
        assert_eq!(order, before);
        assert!(actions.is_empty());

        // The right ICC: submitted again as attempt 2, and the order goes on.
        let fix = CorrectPortIn {
            sim_icc: Some("8945020000000000012".into()),
            ..correction("l2")
        };
        correct_port_in(&mut order, &fix, NOW + 50, &mut actions).unwrap();
        assert!(
            matches!(&actions[..], [Action::SubmitPort { attempt: 2, sim_icc: Some(icc), .. }]
                if icc == "8945020000000000012"),
            "{actions:?}"
        );
        assert_eq!(order.state, OrderState::InProgress);
        assert_eq!(order.items[0].state, OrderState::InProgress);
        // The first attempt's late answers are not this attempt's.
        let stale = PortingEventPayload::PortCompleted(PortCompleted {
            item_id: "l2".into(),
            porting_id: "P1".into(),
            msisdn: "+4520000002".into(),
            completed_at: NOW + 60,
        });
        let unchanged = order.clone();
        assert!(apply(&mut order, &Input::Porting(&stale), NOW + 60).is_empty());
        assert_eq!(order, unchanged);
        // Nothing to correct while the new attempt is on its way.
        assert!(matches!(
            correct_port_in(&mut order, &fix, NOW + 70, &mut Vec::new()),
            Err(CorrectionRefusal::NotRejected { .. })
        ));
        assert!(shows(&order, "portStatus", "submitting"));
        assert!(!shows(&order, "portRejection", "wrong_icc"));
        assert!(!shows(&order, "portCorrectable", "sim_icc"));
        let next = port_answers(&mut order, "l2", 2, "P2", true);
        assert_eq!(order.step(StepName::Porting).state, StepState::Done);
        assert!(shows(&order, "portStatus", "completed"));
        assert!(shows(&order, "portDate", "2027-01-18"));
        assert!(shows(&order, "portedOn", "2027-01-18"));
        assert_eq!(activations(&next), ["l2"]);
    }

    #[test]
    fn a_corrected_port_date_must_be_from_tomorrow_and_is_used_when_it_is_a_working_day() {
        let (mut order, _) = submitted_port();
        port_answers(&mut order, "l2", 1, "P1", false);
        rejected(&mut order, "P1", "port_date_unavailable");
        let on = |day| CorrectPortIn {
            desired_port_date: Some(day),
            ..correction("l2")
        };
        // NOW: Friday 15 January 2027, day 20833; 90 days ahead at most.
        for day in [20_833, 20_833 + 91] {
            let refused = correct_port_in(&mut order, &on(day), NOW, &mut Vec::new());
            assert!(
                matches!(&refused, Err(CorrectionRefusal::Invalid(v)) if v[0].code == "invalid_port_date"),
                "{day}: {refused:?}"
            );
        }
        let mut asked = Vec::new();
        correct_port_in(&mut order, &on(20_838), NOW, &mut asked).unwrap();
        assert!(
            matches!(&asked[..], [Action::SubmitPort { requested_date, .. }] if requested_date == "2027-01-20"),
            "{asked:?}"
        );
    }

    #[test]
    fn a_rejection_only_an_agent_can_help_with_says_so() {
        let (mut order, _) = submitted_port();
        port_answers(&mut order, "l2", 1, "P1", false);
        rejected(&mut order, "P1", "number_blocked");
        assert_eq!(order.state, OrderState::Held);
        assert!(
            order
                .state_reason
                .clone()
                .unwrap()
                .contains("an agent looks")
        );
        assert_eq!(correctable("pac_expired", ""), ["pac"]);
        assert_eq!(correctable("pac_invalid", ""), ["pac"]);
        assert_eq!(correctable("wrong_icc", ""), ["sim_icc"]);
        assert_eq!(
            correctable("number_not_with_operator", ""),
            ["current_operator"]
        );
        assert_eq!(
            correctable("port_date_unavailable", ""),
            ["desired_port_date"]
        );
        assert!(
            correctable("owner_mismatch", "").is_empty(),
            "a new owner is verified again, by an agent"
        );
        assert!(correctable("number_blocked", "").is_empty());
    }

    #[test]
    fn a_port_that_is_never_answered_or_never_executed_holds_the_order_for_an_agent() {
        let (mut order, _) = submitted_port();
        port_answers(&mut order, "l2", 1, "P1", false);
        apply(&mut order, &Input::Tick, NOW + 48 * 3_600_000);
        assert_eq!(order.state, OrderState::Held);
        assert!(
            order
                .state_reason
                .clone()
                .unwrap()
                .contains("did not answer")
        );
        assert_eq!(order.next_deadline(), None);

        let (mut order, _) = submitted_port();
        use tcom_schemas::porting::*;
        port_answers(&mut order, "l2", 1, "P1", false);
        let accepted = PortingEventPayload::PortAccepted(PortAccepted {
            item_id: "l2".into(),
            porting_id: "P1".into(),
            port_date: "2027-01-18".into(),
            executes_at: NOW + 3 * 86_400_000,
        });
        apply(&mut order, &Input::Porting(&accepted), NOW + 40);
        // A day after the port's execution.
        let due = NOW + 3 * 86_400_000 + 86_400_000;
        assert_eq!(order.next_deadline(), Some(due));
        apply(&mut order, &Input::Tick, due);
        assert_eq!(order.state, OrderState::Held);
        assert!(
            order
                .state_reason
                .clone()
                .unwrap()
                .contains("not completed on its date 2027-01-18")
        );
    }

    #[test]
    fn the_requested_port_date_follows_the_country_rules() {
        // NOW: Friday 15 January 2027 (day 20833 since the epoch).
        let date = |country, day| requested_port_date(country, day, NOW).to_string();
        assert_eq!(date("DK", None), "2027-01-18");
        assert_eq!(
            date("DK", Some(20_838)),
            "2027-01-20",
            "a working day is kept"
        );
        assert_eq!(date("DK", Some(20_834)), "2027-01-18", "a Saturday is not");
        assert_eq!(date("DK", Some(20_833)), "2027-01-18", "nor today");
        assert_eq!(date("GB", None), "2027-01-18");
        assert_eq!(date("GB", Some(20_837)), "2027-01-19");
        assert_eq!(date("GB", Some(20_834)), "2027-01-18", "a Saturday is not");
        assert_eq!(date("GB", Some(20_833)), "2027-01-18", "nor today");
        // Maundy Thursday 2027 is a Danish holiday, not a British one.
        assert_eq!(date("DK", Some(20_902)), "2027-01-18");
        assert_eq!(date("GB", Some(20_902)), "2027-03-25");
    }

    /// A paid order with two port-in lines, both asked of the clearing house.
    fn two_ports() -> Order {
        let port_in = |msisdn: &str| LineNumber::PortIn {
            msisdn: msisdn.into(),
            current_operator: "TDC".into(),
            sim_icc: Some("8945020000000000004".into()),
            desired_port_date: None,
            pac: None,
        };
        let mut order = order(vec![
            line("l2", port_in("+4520000002")),
            line("l3", port_in("+4520000003")),
        ]);
        order.country = Some("DK".into());
        pay(&mut order, PaymentState::Authorized);
        let asked = pay(&mut order, PaymentState::Captured);
        let asked = sims_ready(&mut order, &asked);
        let submitted: Vec<&str> = asked
            .iter()
            .filter_map(|a| match a {
                Action::SubmitPort { item_id, .. } => Some(item_id.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(submitted, ["l2", "l3"]);
        order
    }

    #[test]
    fn tcm_waits_for_every_port_of_the_order() {
        let mut order = two_ports();
        let first = port_answers(&mut order, "l2", 1, "P1", true);
        assert!(activations(&first).is_empty(), "{first:?}");
        assert_eq!(order.step(StepName::Porting).state, StepState::InProgress);
        let second = port_answers(&mut order, "l3", 1, "P2", true);
        assert_eq!(activations(&second), ["l2", "l3"]);
    }

    #[test]
    fn only_the_port_whose_answer_is_overdue_is_held() {
        let mut order = two_ports();
        port_answers(&mut order, "l2", 1, "P1", false);
        apply(&mut order, &Input::Tick, NOW + 48 * 3_600_000);
        assert_eq!(order.state, OrderState::Held);
        assert_eq!(order.items[0].state, OrderState::Held);
        assert_ne!(
            order.items[1].state,
            OrderState::Held,
            "l3 has no answer due yet"
        );
    }

    #[test]
    fn a_correction_releases_the_order_only_when_no_other_item_is_held() {
        use tcom_schemas::porting::*;
        let mut order = two_ports();
        port_answers(&mut order, "l2", 1, "P1", false);
        port_answers(&mut order, "l3", 1, "P2", false);
        for (item, porting_id) in [("l2", "P1"), ("l3", "P2")] {
            let report = PortingEventPayload::PortRejected(PortRejected {
                item_id: item.into(),
                porting_id: porting_id.into(),
                code: "number_not_with_operator".into(),
                reason: "not with TDC".into(),
            });
            apply(&mut order, &Input::Porting(&report), NOW + 30);
        }
        let operator = |item: &str, name: &str| CorrectPortIn {
            current_operator: Some(name.into()),
            ..correction(item)
        };
        // An operator named by blanks, or at length, is no operator.
        for name in ["   ", &"T".repeat(101)] {
            let refused = correct_port_in(&mut order, &operator("l2", name), NOW, &mut Vec::new());
            assert!(
                matches!(&refused, Err(CorrectionRefusal::Invalid(v)) if v[0].code == "invalid_current_operator"),
                "{refused:?}"
            );
        }
        correct_port_in(
            &mut order,
            &operator("l2", "Telia"),
            NOW + 40,
            &mut Vec::new(),
        )
        .unwrap();
        assert_eq!(order.state, OrderState::Held, "l3 is still held");
        correct_port_in(
            &mut order,
            &operator("l3", "Telia"),
            NOW + 50,
            &mut Vec::new(),
        )
        .unwrap();
        assert_eq!(order.state, OrderState::InProgress);
        assert_eq!(order.state_reason, None);
    }

    #[test]
    fn a_request_refused_outright_holds_its_attempt_and_late_submissions_are_ignored() {
        use tcom_schemas::porting::*;
        let refused = |item: &str| {
            PortingEventPayload::PortRejected(PortRejected {
                item_id: item.into(),
                porting_id: String::new(),
                code: "validation_failed".into(),
                reason: "icc: required".into(),
            })
        };
        let (mut order, _) = submitted_port();
        let unchanged = order.clone();
        apply(&mut order, &Input::Porting(&refused("l9")), NOW + 30);
        assert_eq!(order, unchanged, "another item's refusal");
        apply(&mut order, &Input::Porting(&refused("l2")), NOW + 30);
        assert_eq!(order.state, OrderState::Held);
        assert_eq!(
            order.items[0].port.as_ref().unwrap().status,
            PortStatus::Rejected
        );
        // Corrected: attempt 2 is being submitted; attempt 1's submission, late, is not it.
        let fix = CorrectPortIn {
            current_operator: Some("Telia".into()),
            ..correction("l2")
        };
        correct_port_in(&mut order, &fix, NOW + 50, &mut Vec::new()).unwrap();
        let submitting = order.clone();
        let late = PortingEventPayload::PortSubmitted(PortSubmitted {
            item_id: "l2".into(),
            attempt: 1,
            porting_id: "P1".into(),
            answer_due_at: NOW + 48 * 3_600_000,
        });
        apply(&mut order, &Input::Porting(&late), NOW + 60);
        assert_eq!(order, submitting);
        // Once the clearing house has attempt 2, a refusal without an id is not about it.
        port_answers(&mut order, "l2", 2, "P2", false);
        let submitted = order.clone();
        apply(&mut order, &Input::Porting(&refused("l2")), NOW + 70);
        assert_eq!(order, submitted);
    }

    #[test]
    fn reports_are_applied_only_to_the_item_and_attempt_they_name_while_the_step_runs() {
        use tcom_schemas::porting::*;
        let accepted = |item: &str, porting_id: &str| {
            PortingEventPayload::PortAccepted(PortAccepted {
                item_id: item.into(),
                porting_id: porting_id.into(),
                port_date: "2027-01-18".into(),
                executes_at: NOW + 3 * 86_400_000,
            })
        };
        let (mut order, _) = submitted_port();
        port_answers(&mut order, "l2", 1, "P1", false);
        let unchanged = order.clone();
        // Another item's id, or another request's id: not this port's answer.
        apply(&mut order, &Input::Porting(&accepted("l9", "P1")), NOW + 30);
        apply(&mut order, &Input::Porting(&accepted("l2", "P9")), NOW + 30);
        assert_eq!(order, unchanged);
        // The first attempt's late answers do not touch the second, once submitted.
        rejected(&mut order, "P1", "wrong_icc");
        let fix = CorrectPortIn {
            sim_icc: Some("8945020000000000012".into()),
            ..correction("l2")
        };
        correct_port_in(&mut order, &fix, NOW + 50, &mut Vec::new()).unwrap();
        port_answers(&mut order, "l2", 2, "P2", false);
        let second = order.clone();
        apply(&mut order, &Input::Porting(&accepted("l2", "P1")), NOW + 60);
        rejected(&mut order, "P1", "wrong_icc");
        assert_eq!(order, second);
        // Nothing is applied to an order that ended, or whose porting step is not running.
        let mut ended = second.clone();
        ended.state = OrderState::Failed;
        apply(&mut ended, &Input::Porting(&accepted("l2", "P2")), NOW + 70);
        assert_eq!(ended.items[0].port, second.items[0].port);
        let mut stopped = second.clone();
        stopped.step_mut(StepName::Porting).state = StepState::Failed;
        apply(
            &mut stopped,
            &Input::Porting(&accepted("l2", "P2")),
            NOW + 70,
        );
        assert_eq!(stopped.items[0].port, second.items[0].port);
        // The second attempt's own answer is.
        apply(&mut order, &Input::Porting(&accepted("l2", "P2")), NOW + 70);
        assert_eq!(
            order.items[0].port.as_ref().unwrap().status,
            PortStatus::Accepted
        );
    }

    #[test]
    fn data_sharing_cards_of_the_other_sim_type_come_apart_and_the_line_s_sim_stays_first() {
        // An eSIM line with two pSIM data-sharing cards.
        let mut mixed = line("l1", new_number("+4520000001"));
        mixed.add_ons[0].sim_type = Some(SimType::Psim);
        let mut order = order(vec![mixed]);
        assert!(
            order.items[0].add_ons[0]
                .characteristics
                .contains(&("simType".into(), "PSIM".into()))
        );
        let asked = captured(&mut order);
        assert_eq!(
            asked,
            [
                Action::DeliverSims {
                    item_id: "l1".into(),
                    psim: false,
                    sims: 1,
                    line: true,
                },
                Action::DeliverSims {
                    item_id: "l1".into(),
                    psim: true,
                    sims: 2,
                    line: false,
                },
            ]
        );
        // The cards' shipment comes first; the line waits for its eSIM.
        let shipped = SimEventPayload::ShipmentCreated(tcom_schemas::sim::ShipmentCreated {
            item_id: "l1".into(),
            shipment_id: "SHP1".into(),
            tracking_number: "TRK1".into(),
            iccids: vec!["8945card1".into(), "8945card2".into()],
        });
        assert!(apply(&mut order, &Input::Sim(&shipped), NOW + 20).is_empty());
        assert!(
            !order.items[0]
                .characteristics
                .iter()
                .any(|(n, _)| n == "ICCID"),
            "a card's ICCID is not the line's"
        );
        let esim = SimEventPayload::EsimProfilesReady(tcom_schemas::sim::EsimProfilesReady {
            item_id: "l1".into(),
            profiles: vec![tcom_schemas::sim::EsimProfile {
                iccid: "8945line".into(),
                activation_code_sealed: "pd1.code".into(),
                confirmation_code_sealed: None,
            }],
        });
        let asked = apply(&mut order, &Input::Sim(&esim), NOW + 30);
        let [
            Action::ActivateSubscription {
                iccid,
                shared_data_sims,
                ..
            },
        ] = &asked[..]
        else {
            panic!("{asked:?}")
        };
        assert_eq!(iccid.as_deref(), Some("8945line"));
        assert_eq!(shared_data_sims, &["8945card1", "8945card2"]);
        // Delivered again, the eSIM report changes nothing.
        let again = order.clone();
        assert!(apply(&mut order, &Input::Sim(&esim), NOW + 40).is_empty());
        assert_eq!(order, again);
    }

    #[test]
    fn binding_end_dates_clamp_to_the_month_and_follow_the_danish_date() {
        let mut item = two_lines().items.remove(0);
        // 2027-01-31 23:30 UTC is 1 February in Denmark: 6 months later is 1 August.
        let late_january = 1_801_438_200_000;
        assert_eq!(
            binding_end_date(late_january, &item).as_deref(),
            Some("2027-08-01")
        );
        item.characteristics
            .retain(|(name, _)| name != "bindingMonths");
        item.characteristics
            .push(("bindingMonths".into(), "1".into()));
        // 2027-01-31 10:00 UTC: a month later is the last day of February.
        assert_eq!(
            binding_end_date(1_801_389_600_000, &item).as_deref(),
            Some("2027-02-28")
        );
        item.characteristics
            .retain(|(name, _)| name != "bindingMonths");
        assert_eq!(binding_end_date(NOW, &item), None);
    }
}
