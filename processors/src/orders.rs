//! The order processor: orders keyed `tenant:order` (an order has its basket's id and key),
//! driven by [`crate::domain::order`]. Its inputs are co-partitioned: `order.commands` (placed
//! at checkout, cancellations), `payment.events` (what the payments connector learned from
//! the provider) and `msisdn.events` (number confirmations for the order's basket). A timer
//! fails orders not paid within the freeze window and steps that timed out.
//!
//! The shopper's checkout waits for the payment to be set up: the origin headers travel with
//! the payment command through the connector and back, and the order answers then with what
//! the storefront needs to let the shopper pay.

use std::sync::Arc;
use std::time::SystemTime;

use tcom_schemas::msisdn::{
    ConfirmNumber, MsisdnCommand, MsisdnCommandPayload, MsisdnEvent, MsisdnEventPayload,
    ReleaseNumber,
};
use tcom_schemas::order::{
    OrderCommand, OrderCommandPayload, OrderEvent, OrderSnapshot, PlaceOrder,
};
use tcom_schemas::payment::{
    CancelPayment, CapturePayment, CreatePayment, PaymentCommand, PaymentCommandPayload,
    PaymentEvent, RefundPayment,
};
use tcom_schemas::tenant::{OwnerVerificationPolicy, Tenant};
use tcom_schemas::topics;
use tcom_state::global::GlobalTableSpec;
use tcom_state::reply::REPLY_TO_HEADER;
use tcom_state::runtime::COMMAND_ID_HEADER;
use tcom_state::{Context, Output, ProcessError, Processor, ProcessorFactory, Record};

use tcom_schemas::porting::{PortingCommand, PortingCommandPayload, PortingEvent, SubmitPort};
use tcom_schemas::sim::{PrepareEsimProfiles, ShipSims, SimCommand, SimCommandPayload, SimEvent};
use tcom_schemas::tcm::{ActivateSubscription, TcmCommand, TcmCommandPayload, TcmEvent};

use crate::catalog::entity_key;
use crate::codec::BlockingCodec;
use crate::deadlines;
use crate::domain::basket::Basket;
use crate::domain::identity::Assurance;
use crate::domain::order::{
    Action, CancelAnswer, CorrectionRefusal, Input, Order, OwnerPolicy, PaymentSetup, apply,
    cancel, changes, correct_port_in, place, require_owner, start,
};
use crate::domain::order_document::{render, render_public};
use crate::headers::{TENANT_HEADER, origin_of, with_origin};
use crate::json_store::{load, save};
use crate::outcome::{Outcome, Refusal};

/// Names the consumer group, changelogs and state folder.
pub const APPLICATION_ID: &str = "tcom-orders";
/// `tenant:order` → [`Order`] (JSON).
pub const ORDERS_STORE: &str = "orders";
/// Deadline (8 bytes, big-endian ms) + `tenant:order` → nothing.
pub const DEADLINES_STORE: &str = "order-deadlines";
pub const TENANTS_TABLE: &str = "tenants";
const DEADLINE_BATCH: usize = 500;

/// The global tables the order processor reads.
pub fn global_tables() -> Vec<GlobalTableSpec> {
    vec![GlobalTableSpec {
        name: TENANTS_TABLE.to_owned(),
        topic: topics::TENANTS.to_owned(),
    }]
}

/// Creates the processor of each task.
pub fn factory(codec: BlockingCodec) -> ProcessorFactory {
    let codec = Arc::new(codec);
    Arc::new(move |_partition| {
        Box::new(OrderProcessor {
            codec: codec.clone(),
        })
    })
}

struct OrderProcessor {
    codec: Arc<BlockingCodec>,
}

/// The path the APIs show an order at.
pub fn order_href(order_id: &str) -> String {
    format!("/v1/storefront/orders/{order_id}")
}

/// The tenant's owner-verification policy as the order keeps it (settings were validated
/// when stored; an unreadable level asks the most).
fn owner_policy(policy: &OwnerVerificationPolicy) -> OwnerPolicy {
    OwnerPolicy {
        min_assurance: Assurance::parse(&policy.min_assurance).unwrap_or(Assurance::High),
        min_age: u32::try_from(policy.min_age).unwrap_or(18),
        hold_on_failure: policy.on_failure == "hold",
        timeout_ms: i64::from(policy.timeout_seconds) * 1000,
    }
}

/// The order as a command's answer: its TMF622 document.
fn accepted(order: &Order) -> Outcome {
    Outcome::accepted(
        order.version,
        &render_public(order, &order_href(&order.order_id)),
    )
}

fn not_found(order_id: &str) -> Outcome {
    Outcome::rejected(
        Refusal::NotFound,
        "order_not_found",
        format!("no order {order_id}"),
    )
}

/// Why a port-in correction was not taken, as the customer's answer.
fn correction_refused(refusal: CorrectionRefusal, item_id: &str) -> Outcome {
    match refusal {
        CorrectionRefusal::UnknownItem => Outcome::rejected(
            Refusal::NotFound,
            "order_item_not_found",
            format!("the order has no port-in item {item_id}"),
        ),
        CorrectionRefusal::NotRejected { status } => Outcome::rejected(
            Refusal::Conflict,
            "port_not_correctable",
            format!("the port of item {item_id} is {status}: only a rejected port is corrected"),
        ),
        CorrectionRefusal::Invalid(violations) => Outcome::violated(Refusal::Invalid, violations)
            .unwrap_or_else(|| {
                Outcome::rejected(Refusal::Invalid, "invalid_correction", "invalid correction")
            }),
    }
}

/// The caller waiting for an answer: a command's own reply address, or a saga's origin.
fn waiting_of(record: &Record<'_>) -> Option<(String, Vec<u8>)> {
    match (
        record.header(REPLY_TO_HEADER),
        record.header(COMMAND_ID_HEADER),
    ) {
        (Some(reply_to), Some(id)) => {
            Some((String::from_utf8_lossy(reply_to).into_owned(), id.to_vec()))
        }
        _ => origin_of(record),
    }
}

impl Processor for OrderProcessor {
    fn process(&mut self, ctx: &mut Context<'_>, record: &Record<'_>) -> Result<(), ProcessError> {
        let bytes = record
            .value
            .ok_or_else(|| ProcessError::Permanent("an order record without a value".into()))?;
        match record.topic {
            topics::PAYMENT_EVENTS => {
                let event: PaymentEvent = self.codec.decode(bytes)?;
                self.on_payment(ctx, &event, origin_of(record))
            }
            topics::MSISDN_EVENTS => {
                let event: MsisdnEvent = self.codec.decode(bytes)?;
                self.on_number(ctx, &event)
            }
            topics::TCM_EVENTS => {
                let event: TcmEvent = self.codec.decode(bytes)?;
                let input = Input::Tcm(&event.payload);
                let (tenant, order) = (&event.tenant_id, &event.order_id);
                self.on_report(
                    ctx,
                    "TCM",
                    tenant,
                    order,
                    &event.event_id,
                    event.occurred_at,
                    &input,
                )
            }
            topics::SIM_EVENTS => {
                let event: SimEvent = self.codec.decode(bytes)?;
                let input = Input::Sim(&event.payload);
                let (tenant, order) = (&event.tenant_id, &event.order_id);
                self.on_report(
                    ctx,
                    "SIM",
                    tenant,
                    order,
                    &event.event_id,
                    event.occurred_at,
                    &input,
                )
            }
            topics::PORTING_EVENTS => {
                let event: PortingEvent = self.codec.decode(bytes)?;
                let input = Input::Porting(&event.payload);
                let (tenant, order) = (&event.tenant_id, &event.order_id);
                self.on_report(
                    ctx,
                    "porting",
                    tenant,
                    order,
                    &event.event_id,
                    event.occurred_at,
                    &input,
                )
            }
            _ => {
                let command: OrderCommand = self.codec.decode(bytes)?;
                self.on_command(ctx, &command, waiting_of(record))
            }
        }
    }

    fn punctuate(&mut self, ctx: &mut Context<'_>, now: SystemTime) -> Result<(), ProcessError> {
        let now_ms = deadlines::millis(now);
        for key in deadlines::take_due(ctx, DEADLINES_STORE, now_ms, DEADLINE_BATCH)? {
            let Some(mut order) = load::<Order>(ctx, ORDERS_STORE, &key)? else {
                continue;
            };
            let before = order.clone();
            let actions = apply(&mut order, &Input::Tick, now_ms);
            let cause = format!("timer:{key}:{}", order.version);
            self.commit(ctx, Some(&before), &mut order, &actions, &cause, now_ms)?;
        }
        Ok(())
    }
}

impl OrderProcessor {
    fn tenant(&self, ctx: &Context<'_>, tenant_id: &str) -> Result<Option<Tenant>, ProcessError> {
        ctx.global(TENANTS_TABLE, tenant_id.as_bytes())
            .map(|bytes| self.codec.decode::<Tenant>(&bytes))
            .transpose()
    }

    fn on_command(
        &self,
        ctx: &mut Context<'_>,
        command: &OrderCommand,
        waiting: Option<(String, Vec<u8>)>,
    ) -> Result<(), ProcessError> {
        let key = entity_key(&command.tenant_id, &command.order_id);
        let stored: Option<Order> = load(ctx, ORDERS_STORE, &key)?;
        let outcome = match &command.payload {
            OrderCommandPayload::PlaceOrder(placed) => match stored {
                // Checked out again: the order there is (never a second one).
                Some(order) => Some(accepted(&order)),
                None => self.place(ctx, command, placed, waiting.as_ref())?,
            },
            OrderCommandPayload::VerifyOwner(verification) => {
                let owned =
                    stored.filter(|o| command.customer_id.as_deref() == Some(&o.customer_id));
                match owned {
                    None => Some(not_found(&command.order_id)),
                    Some(mut order) => {
                        let before = order.clone();
                        let actions = apply(
                            &mut order,
                            &Input::OwnerVerification(verification),
                            command.issued_at,
                        );
                        if order != before {
                            self.commit(
                                ctx,
                                Some(&before),
                                &mut order,
                                &actions,
                                &command.command_id,
                                command.issued_at,
                            )?;
                        }
                        Some(accepted(&order))
                    }
                }
            }
            OrderCommandPayload::CorrectPortIn(correction) => {
                let owned =
                    stored.filter(|o| command.customer_id.as_deref() == Some(&o.customer_id));
                match owned {
                    None => Some(not_found(&command.order_id)),
                    Some(mut order) => {
                        let before = order.clone();
                        let mut actions = Vec::new();
                        match correct_port_in(
                            &mut order,
                            correction,
                            command.issued_at,
                            &mut actions,
                        ) {
                            Ok(()) => {
                                self.commit(
                                    ctx,
                                    Some(&before),
                                    &mut order,
                                    &actions,
                                    &command.command_id,
                                    command.issued_at,
                                )?;
                                Some(accepted(&order))
                            }
                            Err(refusal) => Some(correction_refused(refusal, &correction.item_id)),
                        }
                    }
                }
            }
            OrderCommandPayload::CancelOrder(c) => {
                let owned =
                    stored.filter(|o| command.customer_id.as_deref() == Some(&o.customer_id));
                match owned {
                    None => Some(not_found(&command.order_id)),
                    Some(mut order) => {
                        let before = order.clone();
                        let mut actions = Vec::new();
                        let answer = cancel(
                            &mut order,
                            c.reason.as_deref(),
                            command.issued_at,
                            &mut actions,
                        );
                        if answer == CancelAnswer::TooLate {
                            Some(Outcome::rejected(
                                Refusal::Conflict,
                                "order_not_cancellable",
                                format!("the order is {}", order.state.as_str()),
                            ))
                        } else {
                            self.commit(
                                ctx,
                                Some(&before),
                                &mut order,
                                &actions,
                                &command.command_id,
                                command.issued_at,
                            )?;
                            Some(accepted(&order))
                        }
                    }
                }
            }
        };
        if let (Some(outcome), Some((reply_to, id))) = (outcome, waiting) {
            ctx.reply_to_origin(reply_to, id, outcome.to_bytes());
        }
        Ok(())
    }

    /// A new order from a frozen basket; its first step asks for the payment. `None`: the
    /// answer comes with the payment.
    fn place(
        &self,
        ctx: &mut Context<'_>,
        command: &OrderCommand,
        placed: &PlaceOrder,
        waiting: Option<&(String, Vec<u8>)>,
    ) -> Result<Option<Outcome>, ProcessError> {
        let basket: Basket = serde_json::from_str(&placed.basket_document).map_err(|e| {
            ProcessError::Permanent(format!("a frozen basket that does not parse: {e}"))
        })?;
        let tenant = self.tenant(ctx, &command.tenant_id)?;
        let Some(setup) = tenant
            .as_ref()
            .and_then(|t| t.settings.payment.as_ref())
            .map(|p| PaymentSetup {
                provider: p.provider.clone(),
                account_ref: p.account_ref.clone(),
                secret_ref: p.secret_ref.clone(),
            })
        else {
            return Ok(Some(Outcome::rejected(
                Refusal::Conflict,
                "payments_not_configured",
                "the shop has no payment provider configured",
            )));
        };
        let mut order = place(
            &basket,
            placed.frozen_until,
            &setup,
            placed.return_url.clone(),
            command.issued_at,
        );
        order.contact_sealed.clone_from(&placed.contact_sealed);
        order.country = tenant.as_ref().map(|t| t.settings.country.clone());
        if let Some(policy) = tenant
            .as_ref()
            .and_then(|t| t.settings.identity.as_ref())
            .and_then(|i| i.owner_verification.as_ref())
        {
            require_owner(&mut order, owner_policy(policy));
        }
        let default_return = tenant
            .as_ref()
            .and_then(|t| t.settings.domains.first())
            .map(|domain| format!("https://{domain}/orders/{}", order.order_id))
            .unwrap_or_default();
        let actions = start(&order, &default_return);
        let description = format!(
            "{} order {}",
            tenant.as_ref().map_or("", |t| t.settings.name.as_str()),
            order.order_id
        );
        self.commit_with(
            ctx,
            None,
            &mut order,
            &actions,
            &command.command_id,
            command.issued_at,
            waiting,
            &description,
        )?;
        Ok(None)
    }

    /// A provider's report about one of the order's items (TCM's answer, the SM-DP+'s or the
    /// logistics house's), applied as `input`.
    #[allow(clippy::too_many_arguments)]
    fn on_report(
        &self,
        ctx: &mut Context<'_>,
        provider: &str,
        tenant_id: &str,
        order_id: &str,
        event_id: &str,
        occurred_at: i64,
        input: &Input<'_>,
    ) -> Result<(), ProcessError> {
        let key = entity_key(tenant_id, order_id);
        let Some(mut order) = load::<Order>(ctx, ORDERS_STORE, &key)? else {
            tracing::warn!(order = %key, provider, "A provider's report for an unknown order; ignored.");
            return Ok(());
        };
        let before = order.clone();
        let actions = apply(&mut order, input, occurred_at);
        if order != before || !actions.is_empty() {
            self.commit(
                ctx,
                Some(&before),
                &mut order,
                &actions,
                event_id,
                occurred_at,
            )?;
        }
        Ok(())
    }

    fn on_payment(
        &self,
        ctx: &mut Context<'_>,
        event: &PaymentEvent,
        waiting: Option<(String, Vec<u8>)>,
    ) -> Result<(), ProcessError> {
        let key = entity_key(&event.tenant_id, &event.order_id);
        let Some(mut order) = load::<Order>(ctx, ORDERS_STORE, &key)? else {
            tracing::warn!(order = %key, "A payment event for an unknown order; ignored.");
            return Ok(());
        };
        let before = order.clone();
        let actions = apply(&mut order, &Input::Payment(event), event.occurred_at);
        if order != before || !actions.is_empty() {
            self.commit(
                ctx,
                Some(&before),
                &mut order,
                &actions,
                &event.event_id,
                event.occurred_at,
            )?;
        }
        if let Some((reply_to, id)) = waiting {
            ctx.reply_to_origin(reply_to, id, accepted(&order).to_bytes());
        }
        Ok(())
    }

    fn on_number(&self, ctx: &mut Context<'_>, event: &MsisdnEvent) -> Result<(), ProcessError> {
        let (order_id, input) = match &event.payload {
            MsisdnEventPayload::NumberConfirmed(c) => (
                c.order_id.as_str(),
                Input::NumberConfirmed {
                    msisdn: &event.msisdn,
                },
            ),
            MsisdnEventPayload::ReservationRejected(r) => (
                r.basket_id.as_str(),
                Input::NumberRefused {
                    msisdn: &event.msisdn,
                    reason: &r.reason_code,
                },
            ),
            // Reservations, extensions and releases are the basket's business.
            _ => return Ok(()),
        };
        let key = entity_key(&event.tenant_id, order_id);
        let Some(mut order) = load::<Order>(ctx, ORDERS_STORE, &key)? else {
            return Ok(());
        };
        let before = order.clone();
        let actions = apply(&mut order, &input, event.occurred_at);
        if order != before || !actions.is_empty() {
            self.commit(
                ctx,
                Some(&before),
                &mut order,
                &actions,
                &event.event_id,
                event.occurred_at,
            )?;
        }
        Ok(())
    }

    fn commit(
        &self,
        ctx: &mut Context<'_>,
        before: Option<&Order>,
        order: &mut Order,
        actions: &[Action],
        cause: &str,
        now: i64,
    ) -> Result<(), ProcessError> {
        let description = format!("order {}", order.order_id);
        self.commit_with(ctx, before, order, actions, cause, now, None, &description)
    }

    /// Saves the order (version bumped, deadline index in step), publishes its snapshot and
    /// what changed, and sends its actions; `waiting` travels with a payment creation.
    #[allow(clippy::too_many_arguments)]
    fn commit_with(
        &self,
        ctx: &mut Context<'_>,
        before: Option<&Order>,
        order: &mut Order,
        actions: &[Action],
        cause: &str,
        now: i64,
        waiting: Option<&(String, Vec<u8>)>,
        description: &str,
    ) -> Result<(), ProcessError> {
        let key = entity_key(&order.tenant_id, &order.order_id);
        order.version = before.map_or(1, |b| b.version + 1);
        order.updated_at = now;
        deadlines::reschedule(
            ctx,
            DEADLINES_STORE,
            &key,
            before.and_then(Order::next_deadline),
            order.next_deadline(),
        )?;
        save(ctx, ORDERS_STORE, &key, order)?;
        let tenant = order.tenant_id.clone();
        for (index, payload) in changes(before, order).into_iter().enumerate() {
            let event = OrderEvent {
                // Derived from the version: a replayed record makes the same ids.
                event_id: format!("{key}:{}:{index}", order.version),
                tenant_id: tenant.clone(),
                order_id: order.order_id.clone(),
                version: order.version,
                occurred_at: now,
                cause: cause.to_owned(),
                payload,
            };
            ctx.emit(
                Output::new(
                    topics::ORDER_EVENTS,
                    key.clone(),
                    self.codec.encode(&event)?,
                )
                .with_header(TENANT_HEADER, tenant.as_bytes()),
            );
        }
        let snapshot = OrderSnapshot {
            tenant_id: tenant.clone(),
            order_id: order.order_id.clone(),
            version: order.version,
            state: order.state,
            customer_id: Some(order.customer_id.clone()),
            created_at: order.order_date,
            updated_at: order.updated_at,
            document: render(order, &order_href(&order.order_id)).to_string(),
        };
        ctx.emit(
            Output::new(topics::ORDERS, key.clone(), self.codec.encode(&snapshot)?)
                .with_header(TENANT_HEADER, tenant.as_bytes()),
        );
        for action in actions {
            self.send(ctx, order, action, cause, now, waiting, description)?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn send(
        &self,
        ctx: &mut Context<'_>,
        order: &Order,
        action: &Action,
        cause: &str,
        now: i64,
        waiting: Option<&(String, Vec<u8>)>,
        description: &str,
    ) -> Result<(), ProcessError> {
        let payment = |operation: &str, payload| {
            // The command id names the operation of this attempt: the connector derives the
            // provider's Idempotency-Key from it, so a repeat never charges twice.
            let command_id = format!("{}:{}:{operation}", order.order_id, order.payment.attempt);
            (
                command_id.clone(),
                PaymentCommand {
                    command_id,
                    tenant_id: order.tenant_id.clone(),
                    order_id: order.order_id.clone(),
                    attempt: order.payment.attempt,
                    issued_at: now,
                    provider: order.payment.provider.clone(),
                    account_ref: order.payment.account_ref.clone(),
                    secret_ref: order.payment.secret_ref.clone(),
                    payload,
                },
            )
        };
        let currency = order.currency.clone();
        let number = |msisdn: &str, kind: &str, payload| {
            let command_id = format!("{cause}/{kind}/{msisdn}");
            (
                command_id.clone(),
                MsisdnCommand {
                    command_id,
                    msisdn: msisdn.to_owned(),
                    tenant_id: order.tenant_id.clone(),
                    issued_at: now,
                    payload,
                },
            )
        };
        let (topic, key, id, bytes, carries_origin) = match action {
            Action::CreatePayment {
                amount_minor,
                return_url,
            } => {
                let (id, command) = payment(
                    "create",
                    PaymentCommandPayload::CreatePayment(CreatePayment {
                        amount_minor: *amount_minor,
                        currency,
                        customer_id: order.customer_id.clone(),
                        description: description.to_owned(),
                        return_url: return_url.clone(),
                        save_for_subscription: true,
                        expires_at: Some(order.frozen_until),
                    }),
                );
                let key = entity_key(&order.tenant_id, &order.order_id);
                (
                    topics::PAYMENT_COMMANDS,
                    key,
                    id,
                    self.codec.encode(&command)?,
                    true,
                )
            }
            Action::CapturePayment {
                reference,
                amount_minor,
            } => {
                let (id, command) = payment(
                    "capture",
                    PaymentCommandPayload::CapturePayment(CapturePayment {
                        reference: reference.clone(),
                        amount_minor: *amount_minor,
                        currency,
                    }),
                );
                let key = entity_key(&order.tenant_id, &order.order_id);
                (
                    topics::PAYMENT_COMMANDS,
                    key,
                    id,
                    self.codec.encode(&command)?,
                    false,
                )
            }
            Action::CancelPayment { reference } => {
                // Per payment: a void of another attempt's payment (an authorisation that came
                // after the order ended) is a different request.
                let (id, command) = payment(
                    &format!("cancel:{reference}"),
                    PaymentCommandPayload::CancelPayment(CancelPayment {
                        reference: reference.clone(),
                    }),
                );
                let key = entity_key(&order.tenant_id, &order.order_id);
                (
                    topics::PAYMENT_COMMANDS,
                    key,
                    id,
                    self.codec.encode(&command)?,
                    false,
                )
            }
            Action::RefundPayment {
                reference,
                amount_minor,
            } => {
                let (id, command) = payment(
                    &format!("refund:{reference}"),
                    PaymentCommandPayload::RefundPayment(RefundPayment {
                        reference: reference.clone(),
                        amount_minor: *amount_minor,
                        currency,
                    }),
                );
                let key = entity_key(&order.tenant_id, &order.order_id);
                (
                    topics::PAYMENT_COMMANDS,
                    key,
                    id,
                    self.codec.encode(&command)?,
                    false,
                )
            }
            Action::ConfirmNumber { msisdn } => {
                let (id, command) = number(
                    msisdn,
                    "confirm",
                    MsisdnCommandPayload::ConfirmNumber(ConfirmNumber {
                        basket_id: order.basket_id.clone(),
                        order_id: order.order_id.clone(),
                    }),
                );
                (
                    topics::MSISDN_COMMANDS,
                    msisdn.clone(),
                    id,
                    self.codec.encode(&command)?,
                    false,
                )
            }
            Action::DeliverSims {
                item_id,
                psim,
                sims,
                line,
            } => {
                // The outbox, as for TCM: the SIM connector derives its outbound idempotency
                // keys from the command id (the cards of the other SIM type have their own).
                let what = if *line { "sims" } else { "cards" };
                let command_id = format!("{}:{item_id}:{what}", order.order_id);
                let count = i32::try_from(*sims).unwrap_or(i32::MAX);
                let payload = if *psim {
                    SimCommandPayload::ShipSims(ShipSims {
                        item_id: item_id.clone(),
                        customer_id: order.customer_id.clone(),
                        sims: count,
                        recipient_sealed: order.contact_sealed.clone(),
                    })
                } else {
                    SimCommandPayload::PrepareEsimProfiles(PrepareEsimProfiles {
                        item_id: item_id.clone(),
                        customer_id: order.customer_id.clone(),
                        profiles: count,
                    })
                };
                let command = SimCommand {
                    command_id: command_id.clone(),
                    tenant_id: order.tenant_id.clone(),
                    order_id: order.order_id.clone(),
                    issued_at: now,
                    payload,
                };
                (
                    topics::SIM_COMMANDS,
                    entity_key(&order.tenant_id, &order.order_id),
                    command_id,
                    self.codec.encode(&command)?,
                    false,
                )
            }
            Action::SubmitPort {
                item_id,
                attempt,
                msisdn,
                current_operator,
                sim_icc,
                pac,
                requested_date,
            } => {
                // The outbox, as for TCM; a correction submits a new attempt with a new id,
                // so the clearing house sees a new request rather than a repeated one.
                let command_id = format!("{}:{item_id}:port:{attempt}", order.order_id);
                let command = PortingCommand {
                    command_id: command_id.clone(),
                    tenant_id: order.tenant_id.clone(),
                    order_id: order.order_id.clone(),
                    issued_at: now,
                    payload: PortingCommandPayload::SubmitPort(SubmitPort {
                        item_id: item_id.clone(),
                        customer_id: order.customer_id.clone(),
                        attempt: i32::try_from(*attempt).unwrap_or(i32::MAX),
                        country: order.country.clone().unwrap_or_else(|| "DK".to_owned()),
                        msisdn: msisdn.clone(),
                        current_operator: current_operator.clone(),
                        sim_icc: sim_icc.clone(),
                        pac: pac.clone(),
                        owner_cpr_sealed: order.owner.as_ref().and_then(|o| o.cpr_sealed.clone()),
                        requested_date: requested_date.clone(),
                    }),
                };
                (
                    topics::PORTING_COMMANDS,
                    entity_key(&order.tenant_id, &order.order_id),
                    command_id,
                    self.codec.encode(&command)?,
                    false,
                )
            }
            Action::ActivateSubscription {
                item_id,
                plan_code,
                msisdn,
                sim_type,
                iccid,
                shared_data_sims,
                binding_end_date,
            } => {
                // The outbox: written in this transaction with the order step; the TCM
                // connector sends it with an idempotency key derived from the command id.
                let command_id = format!("{}:{item_id}:activate", order.order_id);
                let command = TcmCommand {
                    command_id: command_id.clone(),
                    tenant_id: order.tenant_id.clone(),
                    order_id: order.order_id.clone(),
                    issued_at: now,
                    payload: TcmCommandPayload::ActivateSubscription(ActivateSubscription {
                        item_id: item_id.clone(),
                        customer_id: order.customer_id.clone(),
                        plan_code: plan_code.clone(),
                        msisdn: msisdn.clone(),
                        sim_type: sim_type.clone(),
                        iccid: iccid.clone(),
                        binding_end_date: binding_end_date.clone(),
                        shared_data_sims: shared_data_sims.clone(),
                        owner_name_sealed: order.owner.as_ref().and_then(|o| o.name_sealed.clone()),
                    }),
                };
                (
                    topics::TCM_COMMANDS,
                    entity_key(&order.tenant_id, &order.order_id),
                    command_id,
                    self.codec.encode(&command)?,
                    false,
                )
            }
            Action::ReleaseNumber { msisdn } => {
                let (id, command) = number(
                    msisdn,
                    "release",
                    MsisdnCommandPayload::ReleaseNumber(ReleaseNumber {
                        basket_id: order.basket_id.clone(),
                    }),
                );
                (
                    topics::MSISDN_COMMANDS,
                    msisdn.clone(),
                    id,
                    self.codec.encode(&command)?,
                    false,
                )
            }
        };
        let output = Output::new(topic, key, bytes)
            .with_header(COMMAND_ID_HEADER, id.into_bytes())
            .with_header(TENANT_HEADER, order.tenant_id.as_bytes());
        ctx.emit(with_origin(output, waiting.filter(|_| carries_origin)));
        Ok(())
    }
}
