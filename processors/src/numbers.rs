//! The MSISDN processor: pool numbers, keyed by the E.164 number alone. Every request for one
//! number (from any tenant, any basket) lands on one partition and is decided in order by
//! [`crate::domain::number_rules`], which is what makes giving a number to two baskets
//! impossible without locks.
//!
//! Reservation outcomes go to `msisdn.events`, keyed by the basket (`tenant:basket`), where
//! the basket processor picks them up; a request made on behalf of a waiting shopper carries
//! the shopper's reply address (`origin-*` headers) through to that event. A wall-clock timer
//! releases reservations whose deadline has passed, using an index keyed by deadline.

use std::sync::Arc;
use std::time::SystemTime;

use tcom_schemas::msisdn::{MsisdnCommand, MsisdnCommandPayload, MsisdnEvent, PhoneNumber};
use tcom_schemas::topics;
use tcom_state::{Context, Output, ProcessError, Processor, ProcessorFactory, Record};

use crate::catalog::entity_key;
use crate::codec::BlockingCodec;
use crate::deadlines;
use crate::domain::Msisdn;
use crate::domain::number_rules::{Decision, Holder, PoolNumber, Request, decide};
use crate::headers::{TENANT_HEADER, origin_of, with_origin};
use crate::json_store::{load, save};
use crate::outcome::{Outcome, Refusal};

/// Names the consumer group, changelogs and state folder.
pub const APPLICATION_ID: &str = "tcom-msisdn";
/// E.164 → [`PoolNumber`] (JSON).
pub const NUMBERS_STORE: &str = "numbers";
/// Deadline (8 bytes, big-endian ms) + E.164 → nothing: reservations in expiry order.
pub const DEADLINES_STORE: &str = "deadlines";
/// At most this many reservations are expired per timer tick and task (the rest next tick).
const EXPIRY_BATCH: usize = 500;

/// Creates the processor of each task.
pub fn factory(codec: BlockingCodec) -> ProcessorFactory {
    let codec = Arc::new(codec);
    Arc::new(move |_partition| {
        Box::new(NumberProcessor {
            codec: codec.clone(),
        })
    })
}

struct NumberProcessor {
    codec: Arc<BlockingCodec>,
}

impl Processor for NumberProcessor {
    fn process(&mut self, ctx: &mut Context<'_>, record: &Record<'_>) -> Result<(), ProcessError> {
        let bytes = record
            .value
            .ok_or_else(|| ProcessError::Permanent("an MSISDN command without a value".into()))?;
        let command: MsisdnCommand = self.codec.decode(bytes)?;
        // Keys are E.164 by contract; a number in any other form would dodge the one-partition
        // rule, so it is refused rather than normalised here.
        if Msisdn::parse(&command.msisdn).map(|m| m.as_str() == command.msisdn) != Ok(true) {
            ctx.reply(
                Outcome::rejected(
                    Refusal::Invalid,
                    "invalid_msisdn",
                    format!("{:?} is not an E.164 number", command.msisdn),
                )
                .to_bytes(),
            );
            return Ok(());
        }
        let ms = |seconds: i32| i64::from(seconds.max(1)) * 1000;
        let request = match &command.payload {
            MsisdnCommandPayload::AddToPool(_) => Request::AddToPool,
            MsisdnCommandPayload::ReserveNumber(r) => Request::Reserve {
                basket_id: &r.basket_id,
                ttl_ms: ms(r.ttl_seconds),
            },
            MsisdnCommandPayload::ExtendReservation(r) => Request::Extend {
                basket_id: &r.basket_id,
                ttl_ms: ms(r.ttl_seconds),
            },
            MsisdnCommandPayload::ReleaseNumber(r) => Request::Release {
                basket_id: &r.basket_id,
            },
            MsisdnCommandPayload::ConfirmNumber(r) => Request::Confirm {
                basket_id: &r.basket_id,
                order_id: &r.order_id,
            },
            MsisdnCommandPayload::TransferReservation(r) => Request::Transfer {
                from: &r.from_basket_id,
                to: &r.to_basket_id,
                ttl_ms: ms(r.ttl_seconds),
            },
        };
        let current: Option<PoolNumber> = load(ctx, NUMBERS_STORE, &command.msisdn)?;
        let decision = decide(
            current.as_ref(),
            &command.tenant_id,
            request,
            command.issued_at,
        );
        let origin = origin_of(record);
        // Only the basket that asked continues the shopper's command.
        let asking_basket = match &command.payload {
            MsisdnCommandPayload::ReserveNumber(r) => Some(r.basket_id.as_str()),
            MsisdnCommandPayload::TransferReservation(r) => Some(r.to_basket_id.as_str()),
            _ => None,
        };
        if matches!(command.payload, MsisdnCommandPayload::AddToPool(_)) {
            let outcome = match (decision.refused, &decision.changed, &current) {
                (Some(code), _, _) => Outcome::rejected(
                    Refusal::Conflict,
                    code,
                    format!("{} belongs to another pool", command.msisdn),
                ),
                (None, Some(number), _) | (None, None, Some(number)) => {
                    Outcome::accepted(number.version, &view(&command.msisdn, number))
                }
                (None, None, None) => {
                    return Err(ProcessError::Permanent("an import decided nothing".into()));
                }
            };
            ctx.reply(outcome.to_bytes());
        }
        self.apply(
            ctx,
            &command.tenant_id,
            &command.msisdn,
            current.as_ref(),
            decision,
            &command.command_id,
            command.issued_at,
            asking_basket.zip(origin.as_ref()),
        )
    }

    fn punctuate(&mut self, ctx: &mut Context<'_>, now: SystemTime) -> Result<(), ProcessError> {
        let now_ms = deadlines::millis(now);
        for msisdn in deadlines::take_due(ctx, DEADLINES_STORE, now_ms, EXPIRY_BATCH)? {
            let Some(current) = load::<PoolNumber>(ctx, NUMBERS_STORE, &msisdn)? else {
                continue;
            };
            let decision = decide(Some(&current), &current.tenant_id, Request::Expire, now_ms);
            let cause = format!("expiry:{msisdn}:{}", current.version);
            let tenant_id = current.tenant_id.clone();
            self.apply(
                ctx,
                &tenant_id,
                &msisdn,
                Some(&current),
                decision,
                &cause,
                now_ms,
                None,
            )?;
        }
        Ok(())
    }
}

impl NumberProcessor {
    /// Stores a changed number (keeping the deadline index in step), publishes it, and sends
    /// the notices to their baskets, all of `tenant_id` (the asking tenant's: a number of
    /// another pool is never changed for it).
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        ctx: &mut Context<'_>,
        tenant_id: &str,
        msisdn: &str,
        current: Option<&PoolNumber>,
        decision: Decision,
        cause: &str,
        now: i64,
        origin: Option<(&str, &(String, Vec<u8>))>,
    ) -> Result<(), ProcessError> {
        if let Some(next) = &decision.changed {
            deadlines::reschedule(
                ctx,
                DEADLINES_STORE,
                msisdn,
                current.and_then(PoolNumber::reserved_until),
                next.reserved_until(),
            )?;
            save(ctx, NUMBERS_STORE, msisdn, next)?;
            let value = self.codec.encode(&view(msisdn, next))?;
            ctx.emit(
                Output::new(topics::MSISDN_NUMBERS, msisdn, value)
                    .with_header(TENANT_HEADER, next.tenant_id.as_bytes()),
            );
        }
        for (i, notice) in decision.notices.into_iter().enumerate() {
            let event_id = format!("{cause}/{i}");
            let event = MsisdnEvent {
                event_id: event_id.clone(),
                command_id: Some(cause.to_owned()),
                msisdn: msisdn.to_owned(),
                tenant_id: tenant_id.to_owned(),
                occurred_at: now,
                payload: notice.payload,
            };
            let output = Output::new(
                topics::MSISDN_EVENTS,
                entity_key(tenant_id, &notice.basket_id),
                self.codec.encode(&event)?,
            )
            .with_header(
                tcom_state::runtime::COMMAND_ID_HEADER,
                event_id.into_bytes(),
            )
            .with_header(TENANT_HEADER, tenant_id.as_bytes());
            let continues = origin
                .filter(|(basket, _)| *basket == notice.basket_id)
                .map(|(_, origin)| origin);
            ctx.emit(with_origin(output, continues));
        }
        Ok(())
    }
}

/// A number as the `msisdn.numbers` topic and the views show it.
fn view(msisdn: &str, number: &PoolNumber) -> PhoneNumber {
    let (basket_id, order_id) = match &number.holder {
        Holder::Available => (None, None),
        Holder::Reserved { basket_id, .. } => (Some(basket_id.clone()), None),
        Holder::Assigned {
            basket_id,
            order_id,
        } => (Some(basket_id.clone()), Some(order_id.clone())),
    };
    PhoneNumber {
        msisdn: msisdn.to_owned(),
        tenant_id: number.tenant_id.clone(),
        status: number.status(),
        basket_id,
        reserved_until: number.reserved_until(),
        order_id,
        version: number.version,
        updated_at: number.updated_at,
    }
}
