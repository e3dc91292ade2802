//! The basket processor: shoppers' baskets, keyed `tenant:basket`, checked and priced by
//! [`crate::domain::basket`] against the tenant and its catalog (global tables).
//!
//! A plan line with a new number is a small saga: the line waits (not yet visible) while the
//! MSISDN processor decides the reservation; its answer comes back on `msisdn.events`, keyed
//! by this basket so it reaches this task, and completes or drops the line. The shopper's
//! request waits for that final answer: the reply address travels along in `origin-*` headers.
//! A merge on login is the same shape: the guest basket hands its lines to the customer's
//! basket, which takes them (and the reservations) or hands them back.
//!
//! Ownership is checked here, not only in the ingress: a basket with a customer answers only
//! that customer's commands; any other caller is told the basket does not exist.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tcom_schemas::basket::{
    AbsorbLines, BasketCommand, BasketCommandPayload, BasketEvent, BasketSnapshot, BasketStatus,
    CheckoutBasket, ReturnLines,
};
use tcom_schemas::campaign::{Campaign, CampaignStatus};
use tcom_schemas::catalog::ProductOffering;
use tcom_schemas::msisdn::{
    ExtendReservation, MsisdnCommand, MsisdnCommandPayload, MsisdnEvent, MsisdnEventPayload,
    ReleaseNumber, ReserveNumber, TransferReservation,
};
use tcom_schemas::order::{OrderCommand, OrderCommandPayload, PlaceOrder};
use tcom_schemas::tenant::{StorefrontPolicy, Tenant, TenantStatus};
use tcom_schemas::topics;
use tcom_state::global::GlobalTableSpec;
use tcom_state::reply::REPLY_TO_HEADER;
use tcom_state::runtime::COMMAND_ID_HEADER;
use tcom_state::{Context, Output, ProcessError, Processor, ProcessorFactory, Record};

use crate::catalog::entity_key;
use crate::codec::BlockingCodec;
use crate::deadlines;
use crate::domain::Violation;
use crate::domain::basket::{
    Basket, CampaignEntry, CatalogLookup, Line, LineNumber, LineRequest, MAX_LINES, Reservation,
    Shop, configure_line, freeze, new_basket, readiness, reconfigure_line, reprice,
};
use crate::domain::catalog_rules::pricing_campaign;
use crate::headers::{TENANT_HEADER, origin_of, with_origin};
use crate::json_store::{load, save};
use crate::outcome::{Outcome, Refusal};

/// Names the consumer group, changelogs and state folder.
pub const APPLICATION_ID: &str = "tcom-baskets";
/// `tenant:basket` → [`StoredBasket`] (JSON).
pub const BASKETS_STORE: &str = "baskets";
/// Expiry (8 bytes, big-endian ms) + `tenant:basket` → nothing: baskets in expiry order.
pub const DEADLINES_STORE: &str = "deadlines";
pub const TENANTS_TABLE: &str = "tenants";
pub const OFFERINGS_TABLE: &str = "offerings";
pub const CAMPAIGNS_TABLE: &str = "campaigns";
const EXPIRY_BATCH: usize = 500;

/// The global tables the basket processor reads.
pub fn global_tables() -> Vec<GlobalTableSpec> {
    [
        (TENANTS_TABLE, topics::TENANTS),
        (OFFERINGS_TABLE, topics::CATALOG_OFFERINGS),
        (CAMPAIGNS_TABLE, topics::CATALOG_CAMPAIGNS),
    ]
    .into_iter()
    .map(|(name, topic)| GlobalTableSpec {
        name: name.to_owned(),
        topic: topic.to_owned(),
    })
    .collect()
}

/// Creates the processor of each task.
pub fn factory(codec: BlockingCodec) -> ProcessorFactory {
    let codec = Arc::new(codec);
    Arc::new(move |_partition| {
        Box::new(BasketProcessor {
            codec: codec.clone(),
        })
    })
}

struct BasketProcessor {
    codec: Arc<BlockingCodec>,
}

/// A basket with what the shopper does not see: lines waiting for their number, and lines
/// handed to another basket in a merge that has not been confirmed.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredBasket {
    basket: Basket,
    #[serde(default)]
    pending: Vec<Line>,
    #[serde(default)]
    handed_over: Vec<Line>,
}

impl StoredBasket {
    fn line_ids(&self) -> impl Iterator<Item = &str> {
        self.basket
            .lines
            .iter()
            .chain(&self.pending)
            .map(|l| l.line_id.as_str())
    }
}

/// The tenant's catalog as it is in the global tables, read once per record: its offerings
/// (a tenant has a handful) and its active campaigns.
struct TenantCatalog {
    offerings: HashMap<String, ProductOffering>,
    campaigns: Vec<CampaignEntry>,
}

impl TenantCatalog {
    fn load(
        ctx: &Context<'_>,
        codec: &BlockingCodec,
        tenant_id: &str,
    ) -> Result<Self, ProcessError> {
        let prefix = format!("{tenant_id}:");
        let mut offerings = HashMap::new();
        for (_, bytes) in ctx.global_prefix(OFFERINGS_TABLE, prefix.as_bytes()) {
            let offering: ProductOffering = codec.decode(&bytes)?;
            offerings.insert(offering.offering_id.clone(), offering);
        }
        let mut campaigns = Vec::new();
        for (_, bytes) in ctx.global_prefix(CAMPAIGNS_TABLE, prefix.as_bytes()) {
            let campaign: Campaign = codec.decode(&bytes)?;
            if campaign.status == CampaignStatus::Active {
                campaigns.push(CampaignEntry {
                    targets: campaign.definition.offering_ids.clone(),
                    campaign: pricing_campaign(&campaign.campaign_id, &campaign.definition),
                });
            }
        }
        Ok(Self {
            offerings,
            campaigns,
        })
    }
}

impl CatalogLookup for TenantCatalog {
    fn offering(&self, offering_id: &str) -> Option<ProductOffering> {
        self.offerings.get(offering_id).cloned()
    }

    fn campaigns(&self) -> &[CampaignEntry] {
        &self.campaigns
    }
}

fn not_found(basket_id: &str) -> Outcome {
    Outcome::rejected(
        Refusal::NotFound,
        "basket_not_found",
        format!("no basket {basket_id}"),
    )
}

/// What a record is about, for the reply and the messages it causes.
struct Origin {
    /// The record's own id: causes get ids derived from it, so a replay makes the same ids.
    cause: String,
    /// The waiting caller: the record's `reply-to` and `command-id`, or the `origin-*` headers
    /// of a saga step.
    waiting: Option<(String, Vec<u8>)>,
}

impl Processor for BasketProcessor {
    fn process(&mut self, ctx: &mut Context<'_>, record: &Record<'_>) -> Result<(), ProcessError> {
        let bytes = record
            .value
            .ok_or_else(|| ProcessError::Permanent("a basket record without a value".into()))?;
        if record.topic == topics::MSISDN_EVENTS {
            let event: MsisdnEvent = self.codec.decode(bytes)?;
            let origin = Origin {
                cause: event.event_id.clone(),
                waiting: origin_of(record),
            };
            return self.on_number_event(ctx, &event, &origin);
        }
        let command: BasketCommand = self.codec.decode(bytes)?;
        let waiting = match (
            record.header(REPLY_TO_HEADER),
            record.header(COMMAND_ID_HEADER),
        ) {
            (Some(reply_to), Some(id)) => {
                Some((String::from_utf8_lossy(reply_to).into_owned(), id.to_vec()))
            }
            _ => origin_of(record),
        };
        let origin = Origin {
            cause: command.command_id.clone(),
            waiting,
        };
        // Saga steps answer the original caller themselves; a shopper's command is answered
        // here unless it started a saga (then the saga's last step answers).
        let answer = self.on_command(ctx, &command, &origin)?;
        let from_saga = matches!(
            command.payload,
            BasketCommandPayload::AbsorbLines(_) | BasketCommandPayload::ReturnLines(_)
        );
        if let Some(outcome) = answer {
            if from_saga {
                if let Some((reply_to, id)) = &origin.waiting {
                    ctx.reply_to_origin(reply_to.clone(), id.clone(), outcome.to_bytes());
                }
            } else {
                ctx.reply(outcome.to_bytes());
            }
        }
        Ok(())
    }

    fn punctuate(&mut self, ctx: &mut Context<'_>, now: SystemTime) -> Result<(), ProcessError> {
        let now_ms = deadlines::millis(now);
        for key in deadlines::take_due(ctx, DEADLINES_STORE, now_ms, EXPIRY_BATCH)? {
            let Some(mut stored) = load::<StoredBasket>(ctx, BASKETS_STORE, &key)? else {
                continue;
            };
            if stored.basket.status != BasketStatus::Active || stored.basket.expires_at > now_ms {
                continue;
            }
            let origin = Origin {
                cause: format!("expiry:{key}:{}", stored.basket.version),
                waiting: None,
            };
            self.release_all(ctx, &mut stored, &origin, now_ms)?;
            stored.basket.status = BasketStatus::Expired;
            self.commit(ctx, &mut stored, now_ms, &origin.cause)?;
        }
        Ok(())
    }
}

impl BasketProcessor {
    fn tenant(&self, ctx: &Context<'_>, tenant_id: &str) -> Result<Option<Tenant>, ProcessError> {
        ctx.global(TENANTS_TABLE, tenant_id.as_bytes())
            .map(|bytes| self.codec.decode::<Tenant>(&bytes))
            .transpose()
    }

    fn policy(tenant: &Tenant) -> StorefrontPolicy {
        tenant
            .settings
            .storefront
            .unwrap_or(StorefrontPolicy::PLATFORM_DEFAULT)
    }

    /// Decides a command; `None` when the answer comes later (a saga step is under way).
    fn on_command(
        &self,
        ctx: &mut Context<'_>,
        command: &BasketCommand,
        origin: &Origin,
    ) -> Result<Option<Outcome>, ProcessError> {
        let now = command.issued_at;
        let key = entity_key(&command.tenant_id, &command.basket_id);
        let Some(tenant) = self.tenant(ctx, &command.tenant_id)? else {
            return Ok(Some(Outcome::rejected(
                Refusal::NotFound,
                "unknown_tenant",
                format!("no tenant {}", command.tenant_id),
            )));
        };
        if tenant.status == TenantStatus::Suspended {
            return Ok(Some(Outcome::rejected(
                Refusal::Conflict,
                "tenant_suspended",
                "the shop is closed",
            )));
        }
        let policy = Self::policy(&tenant);
        let stored: Option<StoredBasket> = load(ctx, BASKETS_STORE, &key)?;

        if let BasketCommandPayload::CreateBasket(create) = &command.payload {
            if stored.is_some() {
                return Ok(Some(Outcome::rejected(
                    Refusal::Conflict,
                    "basket_exists",
                    format!("basket {} exists", command.basket_id),
                )));
            }
            let shop = Shop {
                tenant: &tenant.settings,
                channel: &create.channel,
                segment: &create.segment,
                now,
            };
            let basket = match new_basket(
                &command.tenant_id,
                &command.basket_id,
                shop,
                command.customer_id.clone(),
                i64::from(policy.basket_ttl_seconds) * 1000,
            ) {
                Ok(basket) => basket,
                Err(violations) => return Ok(Outcome::violated(Refusal::Invalid, violations)),
            };
            let mut stored = StoredBasket {
                basket,
                pending: Vec::new(),
                handed_over: Vec::new(),
            };
            return self.commit(ctx, &mut stored, now, &origin.cause).map(Some);
        }

        // Merge steps arrive at baskets their sender does not own yet; they check for
        // themselves below. Everything else needs the caller to own the basket.
        let owned = stored.filter(|s| match &s.basket.customer_id {
            None => command.holds_guest_token,
            Some(owner) => command.customer_id.as_deref() == Some(owner.as_str()),
        });
        if let BasketCommandPayload::AbsorbLines(absorb) = &command.payload {
            return self.absorb(ctx, command, absorb, owned, &tenant, origin);
        }
        let Some(mut stored) = owned else {
            return Ok(Some(not_found(&command.basket_id)));
        };
        if let BasketCommandPayload::ReturnLines(back) = &command.payload {
            return self
                .take_back(ctx, &mut stored, back, now, &origin.cause)
                .map(Some);
        }
        if let BasketCommandPayload::CheckoutBasket(checkout) = &command.payload
            && stored.basket.status == BasketStatus::CheckedOut
        {
            // The same basket checked out again: its order answers (never a second order).
            self.place_order(ctx, &stored.basket, checkout, origin)?;
            return Ok(None);
        }
        if stored.basket.status != BasketStatus::Active {
            return Ok(Some(Outcome::rejected(
                Refusal::Conflict,
                "basket_not_active",
                format!(
                    "the basket is {}",
                    format!("{:?}", stored.basket.status).to_lowercase()
                ),
            )));
        }
        let catalog = TenantCatalog::load(ctx, &self.codec, &command.tenant_id)?;
        let channel = stored.basket.channel.clone();
        let segment = stored.basket.segment.clone();
        let shop = Shop {
            tenant: &tenant.settings,
            channel: &channel,
            segment: &segment,
            now,
        };
        match &command.payload {
            BasketCommandPayload::CreateBasket(_) | BasketCommandPayload::AbsorbLines(_) => {
                unreachable!("handled above")
            }
            BasketCommandPayload::ReturnLines(_) => unreachable!("handled above"),
            BasketCommandPayload::AddPlanLine(add) => {
                if stored.line_ids().any(|id| id == add.line_id) {
                    return Ok(Some(Outcome::rejected(
                        Refusal::Conflict,
                        "line_exists",
                        format!("the basket has a line {}", add.line_id),
                    )));
                }
                if stored.basket.lines.len() + stored.pending.len() >= MAX_LINES {
                    return Ok(Some(Outcome::rejected(
                        Refusal::Invalid,
                        "too_many_lines",
                        format!("a basket holds at most {MAX_LINES} subscriptions"),
                    )));
                }
                let request = LineRequest {
                    line_id: add.line_id.clone(),
                    offering_id: add.offering_id.clone(),
                    sim_type: add.sim_type,
                    number: add.number.clone(),
                    binding_months: add.binding_months,
                    add_ons: add.add_ons.clone(),
                };
                let others: Vec<&Line> =
                    stored.basket.lines.iter().chain(&stored.pending).collect();
                let line = match configure_line(&request, &others, shop, &catalog) {
                    Ok(line) => line,
                    Err(violations) => return Ok(Outcome::violated(Refusal::Invalid, violations)),
                };
                if let Some(msisdn) = line.number.reserved_msisdn() {
                    // The line waits for its number; the reservation's answer completes it.
                    let reserve = MsisdnCommandPayload::ReserveNumber(ReserveNumber {
                        basket_id: command.basket_id.clone(),
                        ttl_seconds: policy.reservation_ttl_seconds,
                    });
                    self.send_number_command(
                        ctx,
                        &stored.basket,
                        msisdn,
                        reserve,
                        origin,
                        now,
                        true,
                    )?;
                    stored.pending.push(line);
                    save(ctx, BASKETS_STORE, &key, &stored)?;
                    return Ok(None);
                }
                stored.basket.lines.push(line);
            }
            BasketCommandPayload::UpdateLine(update) => {
                let Some(index) = stored
                    .basket
                    .lines
                    .iter()
                    .position(|l| l.line_id == update.line_id)
                else {
                    return Ok(Some(line_not_found(&update.line_id)));
                };
                let changed = reconfigure_line(
                    &stored.basket.lines[index],
                    update.sim_type,
                    update.binding_months,
                    update.add_ons.clone(),
                    shop,
                    &catalog,
                );
                match changed {
                    Ok(line) => stored.basket.lines[index] = line,
                    Err(violations) => return Ok(Outcome::violated(Refusal::Invalid, violations)),
                }
            }
            BasketCommandPayload::RemoveLine(remove) => {
                let line = if let Some(i) = stored
                    .basket
                    .lines
                    .iter()
                    .position(|l| l.line_id == remove.line_id)
                {
                    stored.basket.lines.remove(i)
                } else if let Some(i) = stored
                    .pending
                    .iter()
                    .position(|l| l.line_id == remove.line_id)
                {
                    stored.pending.remove(i)
                } else {
                    return Ok(Some(line_not_found(&remove.line_id)));
                };
                if let Some(msisdn) = line.number.reserved_msisdn() {
                    self.release(ctx, &stored.basket, msisdn, origin, now)?;
                }
            }
            BasketCommandPayload::AbandonBasket(_) => {
                self.release_all(ctx, &mut stored, origin, now)?;
                stored.basket.status = BasketStatus::Abandoned;
            }
            BasketCommandPayload::ClaimBasket(_) => {
                let Some(customer) = &command.customer_id else {
                    return Ok(Some(Outcome::rejected(
                        Refusal::Invalid,
                        "customer_required",
                        "only a signed-in customer can claim a basket",
                    )));
                };
                stored.basket.customer_id = Some(customer.clone());
            }
            BasketCommandPayload::MergeInto(merge) => {
                return self.hand_over(ctx, command, &mut stored, &merge.target_basket_id, origin);
            }
            BasketCommandPayload::CheckoutBasket(checkout) => {
                return self.check_out(ctx, &mut stored, checkout, &tenant, &catalog, origin, now);
            }
        }
        // Every accepted change keeps the basket (and its held numbers) alive.
        stored.basket.expires_at = now + i64::from(policy.basket_ttl_seconds) * 1000;
        self.extend_reservations(ctx, &stored, policy, origin, now)?;
        reprice(&mut stored.basket, &tenant.settings, now, &catalog);
        self.commit(ctx, &mut stored, now, &origin.cause).map(Some)
    }

    /// A reservation's outcome, an extension, an expiry: the basket's view of its numbers.
    fn on_number_event(
        &self,
        ctx: &mut Context<'_>,
        event: &MsisdnEvent,
        origin: &Origin,
    ) -> Result<(), ProcessError> {
        let now = event.occurred_at;
        let (basket_id, answer_waiting) = match &event.payload {
            MsisdnEventPayload::NumberReserved(e) => (&e.basket_id, true),
            MsisdnEventPayload::ReservationRejected(e) => (&e.basket_id, true),
            MsisdnEventPayload::ReservationExtended(e) => (&e.basket_id, false),
            MsisdnEventPayload::NumberReleased(e) => (&e.basket_id, false),
            MsisdnEventPayload::NumberConfirmed(e) => (&e.basket_id, false),
        };
        let key = entity_key(&event.tenant_id, basket_id);
        let answer = |ctx: &mut Context<'_>, outcome: Outcome| {
            if let (true, Some((reply_to, id))) = (answer_waiting, &origin.waiting) {
                ctx.reply_to_origin(reply_to.clone(), id.clone(), outcome.to_bytes());
            }
        };
        let Some(mut stored) = load::<StoredBasket>(ctx, BASKETS_STORE, &key)? else {
            return Ok(());
        };
        let pending = stored
            .pending
            .iter()
            .position(|l| l.number.msisdn() == event.msisdn);
        match &event.payload {
            MsisdnEventPayload::NumberReserved(reserved) => {
                let wanted = stored.basket.status == BasketStatus::Active
                    && (pending.is_some()
                        || stored
                            .basket
                            .lines
                            .iter()
                            .any(|l| l.number.msisdn() == event.msisdn));
                if !wanted {
                    // The line went (removed, abandoned, merged away) while the number was
                    // being reserved: give it back.
                    self.release(ctx, &stored.basket, &event.msisdn, origin, now)?;
                    answer(
                        ctx,
                        Outcome::rejected(
                            Refusal::Conflict,
                            "basket_changed",
                            "the line was removed or the basket closed while its number was being reserved",
                        ),
                    );
                    return Ok(());
                }
                let held = Reservation::Held {
                    until: reserved.expires_at,
                };
                if let Some(i) = pending {
                    let mut line = stored.pending.remove(i);
                    set_reservation(&mut line, held);
                    stored.basket.lines.push(line);
                    let tenant = self.tenant(ctx, &event.tenant_id)?;
                    if let Some(tenant) = tenant {
                        let policy = Self::policy(&tenant);
                        stored.basket.expires_at =
                            now + i64::from(policy.basket_ttl_seconds) * 1000;
                        let catalog = TenantCatalog::load(ctx, &self.codec, &event.tenant_id)?;
                        reprice(&mut stored.basket, &tenant.settings, now, &catalog);
                    }
                } else {
                    for line in &mut stored.basket.lines {
                        if line.number.msisdn() == event.msisdn {
                            set_reservation(line, held.clone());
                        }
                    }
                }
                let outcome = self.commit(ctx, &mut stored, now, &origin.cause)?;
                answer(ctx, outcome);
            }
            MsisdnEventPayload::ReservationRejected(rejected) => {
                let Some(i) = pending else {
                    return Ok(());
                };
                stored.pending.remove(i);
                save(ctx, BASKETS_STORE, &key, &stored)?;
                let (refusal, detail) = match rejected.reason_code.as_str() {
                    "number_not_in_pool" => (
                        Refusal::Invalid,
                        format!("{} is not a number this shop offers", event.msisdn),
                    ),
                    _ => (
                        Refusal::Conflict,
                        format!(
                            "{} is no longer available: pick another number",
                            event.msisdn
                        ),
                    ),
                };
                answer(
                    ctx,
                    Outcome::rejected(refusal, &rejected.reason_code, detail),
                );
            }
            MsisdnEventPayload::ReservationExtended(extended) => {
                let mut changed = false;
                for line in &mut stored.basket.lines {
                    if line.number.msisdn() == event.msisdn {
                        set_reservation(
                            line,
                            Reservation::Held {
                                until: extended.expires_at,
                            },
                        );
                        changed = true;
                    }
                }
                if changed {
                    self.commit(ctx, &mut stored, now, &origin.cause)?;
                }
            }
            MsisdnEventPayload::NumberReleased(_) => {
                let mut changed = false;
                for line in &mut stored.basket.lines {
                    if line.number.msisdn() == event.msisdn {
                        set_reservation(
                            line,
                            Reservation::Lost {
                                reason: "expired".to_owned(),
                            },
                        );
                        changed = true;
                    }
                }
                if changed {
                    self.commit(ctx, &mut stored, now, &origin.cause)?;
                }
            }
            MsisdnEventPayload::NumberConfirmed(_) => {}
        }
        Ok(())
    }

    /// Checkout: every readiness problem at once, or the basket frozen (priced once more,
    /// numbers held for the freeze window) and its order placed. The order processor answers
    /// the shopper once the payment is set up.
    #[allow(clippy::too_many_arguments)]
    fn check_out(
        &self,
        ctx: &mut Context<'_>,
        stored: &mut StoredBasket,
        checkout: &CheckoutBasket,
        tenant: &Tenant,
        catalog: &TenantCatalog,
        origin: &Origin,
        now: i64,
    ) -> Result<Option<Outcome>, ProcessError> {
        let mut problems = readiness(&stored.basket, now);
        if !stored.pending.is_empty() {
            problems.push(Violation::new(
                "number_reservation_pending",
                "lines",
                "a number is still being reserved for this basket",
            ));
        }
        if let Some(refused) = Outcome::violated(Refusal::Invalid, problems) {
            return Ok(Some(refused));
        }
        if tenant.settings.payment.is_none() {
            return Ok(Some(Outcome::rejected(
                Refusal::Conflict,
                "payments_not_configured",
                "the shop has no payment provider configured yet",
            )));
        }
        let policy = Self::policy(tenant);
        let freeze_ms = i64::from(policy.checkout_freeze_seconds) * 1000;
        freeze(
            &mut stored.basket,
            &tenant.settings,
            now,
            freeze_ms,
            catalog,
        );
        // Numbers stay held for the whole window, and a minute more for the order to confirm
        // them after a payment at the last moment.
        let hold_seconds = policy.checkout_freeze_seconds.saturating_add(60);
        for msisdn in stored
            .basket
            .lines
            .iter()
            .filter_map(|l| l.number.reserved_msisdn())
        {
            let extend = MsisdnCommandPayload::ExtendReservation(ExtendReservation {
                basket_id: stored.basket.basket_id.clone(),
                ttl_seconds: hold_seconds,
            });
            self.send_number_command(ctx, &stored.basket, msisdn, extend, origin, now, false)?;
        }
        self.commit(ctx, stored, now, &origin.cause)?;
        self.place_order(ctx, &stored.basket, checkout, origin)?;
        Ok(None)
    }

    /// Sends the frozen basket to the order processor, carrying the waiting shopper along.
    fn place_order(
        &self,
        ctx: &mut Context<'_>,
        basket: &Basket,
        checkout: &CheckoutBasket,
        origin: &Origin,
    ) -> Result<(), ProcessError> {
        let Some(frozen) = &basket.checkout else {
            return Err(ProcessError::Permanent(
                "a checked-out basket without its checkout".into(),
            ));
        };
        let command_id = format!("{}/order", origin.cause);
        let place = OrderCommand {
            command_id: command_id.clone(),
            tenant_id: basket.tenant_id.clone(),
            order_id: frozen.order_id.clone(),
            issued_at: basket.updated_at,
            customer_id: basket.customer_id.clone(),
            payload: OrderCommandPayload::PlaceOrder(PlaceOrder {
                basket_id: basket.basket_id.clone(),
                basket_version: basket.version,
                basket_document: serde_json::to_string(basket).expect("a basket serializes"),
                frozen_until: frozen.frozen_until,
                return_url: checkout.return_url.clone(),
                // Sealed by the ingress; passed on as it came, never opened here.
                contact_sealed: checkout.contact_sealed.clone(),
            }),
        };
        let output = Output::new(
            topics::ORDER_COMMANDS,
            entity_key(&basket.tenant_id, &frozen.order_id),
            self.codec.encode(&place)?,
        )
        .with_header(COMMAND_ID_HEADER, command_id.into_bytes())
        .with_header(TENANT_HEADER, basket.tenant_id.as_bytes());
        ctx.emit(with_origin(output, origin.waiting.as_ref()));
        Ok(())
    }

    /// Merge, first step (at the guest basket): hand the lines to the customer's basket.
    fn hand_over(
        &self,
        ctx: &mut Context<'_>,
        command: &BasketCommand,
        stored: &mut StoredBasket,
        target: &str,
        origin: &Origin,
    ) -> Result<Option<Outcome>, ProcessError> {
        let Some(customer) = &command.customer_id else {
            return Ok(Some(Outcome::rejected(
                Refusal::Invalid,
                "customer_required",
                "only a signed-in customer can merge a basket",
            )));
        };
        if target == command.basket_id {
            return Ok(Some(Outcome::rejected(
                Refusal::Invalid,
                "merge_into_itself",
                "a basket cannot be merged into itself",
            )));
        }
        if !stored.pending.is_empty() {
            return Ok(Some(Outcome::rejected(
                Refusal::Conflict,
                "reservation_in_progress",
                "a number is still being reserved for this basket; try again",
            )));
        }
        let lines = std::mem::take(&mut stored.basket.lines);
        let absorb = BasketCommand {
            command_id: format!("{}/absorb", origin.cause),
            tenant_id: command.tenant_id.clone(),
            basket_id: target.to_owned(),
            issued_at: command.issued_at,
            payload: BasketCommandPayload::AbsorbLines(AbsorbLines {
                source_basket_id: command.basket_id.clone(),
                lines_json: serde_json::to_string(&lines).expect("lines serialize"),
            }),
            customer_id: Some(customer.clone()),
            holds_guest_token: false,
        };
        self.send_basket_command(ctx, &absorb, origin)?;
        stored.handed_over = lines;
        stored.basket.customer_id = Some(customer.clone());
        stored.basket.status = BasketStatus::Merged;
        stored.basket.merged_into = Some(target.to_owned());
        stored.basket.totals = Default::default();
        self.commit(ctx, stored, command.issued_at, &origin.cause)?;
        Ok(None)
    }

    /// Merge, second step (at the customer's basket): take the lines or hand them back.
    fn absorb(
        &self,
        ctx: &mut Context<'_>,
        command: &BasketCommand,
        absorb: &AbsorbLines,
        owned: Option<StoredBasket>,
        tenant: &Tenant,
        origin: &Origin,
    ) -> Result<Option<Outcome>, ProcessError> {
        let now = command.issued_at;
        let lines: Vec<Line> = serde_json::from_str(&absorb.lines_json)
            .map_err(|e| ProcessError::Permanent(format!("handed-over lines: {e}")))?;
        let refusal = match &owned {
            Some(s) if s.basket.customer_id.is_none() => Some((
                "merge_target_not_a_customer_basket",
                "the target basket belongs to no customer".to_owned(),
            )),
            Some(s) if s.basket.status != BasketStatus::Active => Some((
                "basket_not_active",
                "the customer's basket is no longer active".to_owned(),
            )),
            Some(s) if s.basket.lines.len() + s.pending.len() + lines.len() > MAX_LINES => Some((
                "too_many_lines",
                format!("together the baskets hold more than {MAX_LINES} subscriptions"),
            )),
            Some(_) => None,
            None => Some((
                "basket_not_found",
                format!("no basket {} of this customer", command.basket_id),
            )),
        };
        if let Some((code, detail)) = refusal {
            let back = BasketCommand {
                command_id: format!("{}/return", origin.cause),
                tenant_id: command.tenant_id.clone(),
                basket_id: absorb.source_basket_id.clone(),
                issued_at: now,
                payload: BasketCommandPayload::ReturnLines(ReturnLines {
                    target_basket_id: command.basket_id.clone(),
                    reason_code: code.to_owned(),
                    detail,
                }),
                customer_id: command.customer_id.clone(),
                holds_guest_token: false,
            };
            self.send_basket_command(ctx, &back, origin)?;
            return Ok(None);
        }
        let mut stored = owned.expect("refused when absent");
        let policy = Self::policy(tenant);
        for mut line in lines {
            // Line ids are the shopper's; two baskets may use the same one.
            while stored.line_ids().any(|id| id == line.line_id) {
                line.line_id = format!("{}-merged", line.line_id);
            }
            if let Some(msisdn) = line.number.reserved_msisdn() {
                let transfer = MsisdnCommandPayload::TransferReservation(TransferReservation {
                    from_basket_id: absorb.source_basket_id.clone(),
                    to_basket_id: command.basket_id.clone(),
                    ttl_seconds: policy.reservation_ttl_seconds,
                });
                self.send_number_command(
                    ctx,
                    &stored.basket,
                    msisdn,
                    transfer,
                    origin,
                    now,
                    false,
                )?;
            }
            stored.basket.lines.push(line);
        }
        stored.basket.expires_at = now + i64::from(policy.basket_ttl_seconds) * 1000;
        let catalog = TenantCatalog::load(ctx, &self.codec, &command.tenant_id)?;
        reprice(&mut stored.basket, &tenant.settings, now, &catalog);
        self.commit(ctx, &mut stored, now, &origin.cause).map(Some)
    }

    /// Merge refused by the target: the guest basket gets its lines back.
    fn take_back(
        &self,
        ctx: &mut Context<'_>,
        stored: &mut StoredBasket,
        back: &ReturnLines,
        now: i64,
        cause: &str,
    ) -> Result<Outcome, ProcessError> {
        if stored.basket.status == BasketStatus::Merged
            && stored.basket.merged_into.as_deref() == Some(back.target_basket_id.as_str())
        {
            stored.basket.lines = std::mem::take(&mut stored.handed_over);
            stored.basket.status = BasketStatus::Active;
            stored.basket.merged_into = None;
            self.commit(ctx, stored, now, cause)?;
        }
        let refusal = if back.reason_code == "basket_not_found" {
            Refusal::NotFound
        } else {
            Refusal::Conflict
        };
        Ok(Outcome::rejected(
            refusal,
            &back.reason_code,
            back.detail.clone(),
        ))
    }

    /// Saves the basket, bumps its version, keeps the expiry index in step, publishes the
    /// snapshot and what changed (`basket.events`, caused by the record `cause`); returns the
    /// acceptance with the basket.
    fn commit(
        &self,
        ctx: &mut Context<'_>,
        stored: &mut StoredBasket,
        now: i64,
        cause: &str,
    ) -> Result<Outcome, ProcessError> {
        let key = entity_key(&stored.basket.tenant_id, &stored.basket.basket_id);
        let before: Option<StoredBasket> = load(ctx, BASKETS_STORE, &key)?;
        let old_expiry = before
            .as_ref()
            .filter(|b| b.basket.status == BasketStatus::Active)
            .map(|b| b.basket.expires_at);
        if let Some(before) = &before {
            stored.basket.version = before.basket.version + 1;
        }
        stored.basket.updated_at = now;
        let new_expiry =
            (stored.basket.status == BasketStatus::Active).then_some(stored.basket.expires_at);
        deadlines::reschedule(ctx, DEADLINES_STORE, &key, old_expiry, new_expiry)?;
        save(ctx, BASKETS_STORE, &key, stored)?;
        let basket = &stored.basket;
        let snapshot = BasketSnapshot {
            tenant_id: basket.tenant_id.clone(),
            basket_id: basket.basket_id.clone(),
            version: basket.version,
            status: basket.status,
            customer_id: basket.customer_id.clone(),
            channel: basket.channel.clone(),
            expires_at: basket.expires_at,
            updated_at: basket.updated_at,
            document: serde_json::to_string(basket).expect("a basket serializes"),
        };
        let events =
            crate::domain::basket_events::changes(before.as_ref().map(|b| &b.basket), basket);
        for (index, payload) in events.into_iter().enumerate() {
            let event = BasketEvent {
                // Derived from the version: a replayed record makes the same ids.
                event_id: format!("{key}:{}:{index}", basket.version),
                command_id: cause.to_owned(),
                tenant_id: basket.tenant_id.clone(),
                basket_id: basket.basket_id.clone(),
                version: basket.version,
                occurred_at: now,
                payload,
            };
            ctx.emit(
                Output::new(
                    topics::BASKET_EVENTS,
                    key.clone(),
                    self.codec.encode(&event)?,
                )
                .with_header(TENANT_HEADER, basket.tenant_id.as_bytes()),
            );
        }
        ctx.emit(
            Output::new(topics::BASKETS, key, self.codec.encode(&snapshot)?)
                .with_header(TENANT_HEADER, basket.tenant_id.as_bytes()),
        );
        Ok(Outcome::accepted(basket.version, basket))
    }

    /// Asks the MSISDN processor something about one number. With `continues`, the answer
    /// carries the waiting caller's address back to this processor.
    #[allow(clippy::too_many_arguments)]
    fn send_number_command(
        &self,
        ctx: &mut Context<'_>,
        basket: &Basket,
        msisdn: &str,
        payload: MsisdnCommandPayload,
        origin: &Origin,
        now: i64,
        continues: bool,
    ) -> Result<(), ProcessError> {
        let kind = match &payload {
            MsisdnCommandPayload::ReserveNumber(_) => "reserve",
            MsisdnCommandPayload::ExtendReservation(_) => "extend",
            MsisdnCommandPayload::ReleaseNumber(_) => "release",
            MsisdnCommandPayload::ConfirmNumber(_) => "confirm",
            MsisdnCommandPayload::AddToPool(_) => "pool",
            MsisdnCommandPayload::TransferReservation(_) => "transfer",
        };
        let command_id = format!("{}/{kind}/{msisdn}", origin.cause);
        let command = MsisdnCommand {
            command_id: command_id.clone(),
            msisdn: msisdn.to_owned(),
            tenant_id: basket.tenant_id.clone(),
            issued_at: now,
            payload,
        };
        let output = Output::new(
            topics::MSISDN_COMMANDS,
            msisdn,
            self.codec.encode(&command)?,
        )
        .with_header(COMMAND_ID_HEADER, command_id.into_bytes())
        .with_header(TENANT_HEADER, basket.tenant_id.as_bytes());
        ctx.emit(with_origin(
            output,
            origin.waiting.as_ref().filter(|_| continues),
        ));
        Ok(())
    }

    fn send_basket_command(
        &self,
        ctx: &mut Context<'_>,
        command: &BasketCommand,
        origin: &Origin,
    ) -> Result<(), ProcessError> {
        let output = Output::new(
            topics::BASKET_COMMANDS,
            entity_key(&command.tenant_id, &command.basket_id),
            self.codec.encode(command)?,
        )
        .with_header(COMMAND_ID_HEADER, command.command_id.clone().into_bytes())
        .with_header(TENANT_HEADER, command.tenant_id.as_bytes());
        ctx.emit(with_origin(output, origin.waiting.as_ref()));
        Ok(())
    }

    fn release(
        &self,
        ctx: &mut Context<'_>,
        basket: &Basket,
        msisdn: &str,
        origin: &Origin,
        now: i64,
    ) -> Result<(), ProcessError> {
        let release = MsisdnCommandPayload::ReleaseNumber(ReleaseNumber {
            basket_id: basket.basket_id.clone(),
        });
        self.send_number_command(ctx, basket, msisdn, release, origin, now, false)
    }

    /// Releases every number the basket holds or waits for.
    fn release_all(
        &self,
        ctx: &mut Context<'_>,
        stored: &mut StoredBasket,
        origin: &Origin,
        now: i64,
    ) -> Result<(), ProcessError> {
        let numbers: Vec<String> = stored
            .basket
            .lines
            .iter()
            .chain(&stored.pending)
            .filter_map(|l| l.number.reserved_msisdn().map(str::to_owned))
            .collect();
        for msisdn in numbers {
            self.release(ctx, &stored.basket, &msisdn, origin, now)?;
        }
        stored.pending.clear();
        Ok(())
    }

    /// Extends holds that would end before half a reservation period from now.
    fn extend_reservations(
        &self,
        ctx: &mut Context<'_>,
        stored: &StoredBasket,
        policy: StorefrontPolicy,
        origin: &Origin,
        now: i64,
    ) -> Result<(), ProcessError> {
        let ttl_ms = i64::from(policy.reservation_ttl_seconds) * 1000;
        for line in &stored.basket.lines {
            if let LineNumber::NewNumber {
                msisdn,
                reservation: Reservation::Held { until },
            } = &line.number
                && *until > now
                && *until < now + ttl_ms / 2
            {
                let extend = MsisdnCommandPayload::ExtendReservation(ExtendReservation {
                    basket_id: stored.basket.basket_id.clone(),
                    ttl_seconds: policy.reservation_ttl_seconds,
                });
                self.send_number_command(ctx, &stored.basket, msisdn, extend, origin, now, false)?;
            }
        }
        Ok(())
    }
}

fn set_reservation(line: &mut Line, reservation: Reservation) {
    if let LineNumber::NewNumber {
        reservation: current,
        ..
    } = &mut line.number
    {
        *current = reservation;
    }
}

fn line_not_found(line_id: &str) -> Outcome {
    Outcome::rejected(
        Refusal::NotFound,
        "line_not_found",
        format!("the basket has no line {line_id}"),
    )
}
