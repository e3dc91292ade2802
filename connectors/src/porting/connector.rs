//! The porting connector: relays `porting.commands` (the order processor's outbox) to the
//! clearing house and reports on `porting.events` (see [`crate::outbox_relay`] for the
//! delivery guarantees, the circuit breaker and the dead letters).
//!
//! - `SubmitPort`: the request as the clearing house takes it: OCH-style in Denmark (the
//!   current SIM's ICC, the owner's CPR number, opened from its seal with the customer's data
//!   key only for this call), with the PAC in the UK; idempotent on the command id, which is
//!   new for every attempt. Reported as `PortSubmitted` with the clearing house's id.
//! - `CheckPort` (from a verified webhook): the request read back and reported as it stands
//!   (accepted, rejected, completed; nothing while it is still with the losing operator). The
//!   order ignores what it has applied already. A read the clearing house refuses reports
//!   nothing: the port is not known there, and the order's own deadline catches a port that
//!   never moves.
//!
//! A submission the clearing house refuses outright (a 4xx) is reported as a rejection
//! without a porting id, so the customer can correct it like any other.

use std::future::Future;
use std::sync::Arc;

use tcom_schemas::porting::{
    CheckPort, PortAccepted, PortCompleted, PortRejected, PortSubmitted, PortingCommand,
    PortingCommandPayload, PortingDelayed, PortingEvent, PortingEventPayload, SubmitPort,
};
use tcom_schemas::{Codec, topics};
use tcom_state::client::KafkaSettings;

use super::client::{CarrierClient, PortSubmission, PortView};
use crate::dead_letter::ConnectorMetrics;
use crate::outbox_relay::{Relay, RelayError, RelayOptions, SendError};
use crate::personal_data::{KeyStore, field_context};

/// The connector's consumer group.
pub const GROUP_ID: &str = "tcom-connector-porting";

/// The field context the owner's CPR number is sealed under.
pub const CPR_FIELD: &str = "cpr";

/// The platform's porting topics, the default breaker and backoff.
pub fn default_options() -> RelayOptions {
    RelayOptions::for_topics(topics::PORTING_COMMANDS, topics::PORTING_EVENTS)
}

/// What the connector talks to and how.
#[derive(Debug)]
pub struct PortingSetup {
    pub carrier: CarrierClient,
    /// Opens the owner's CPR number.
    pub keys: KeyStore,
    pub options: RelayOptions,
    pub metrics: Arc<ConnectorMetrics>,
}

struct PortingRelay {
    carrier: CarrierClient,
    keys: KeyStore,
}

/// The request's `reference`: the order item it ports for, `tenant:order:item` (the same
/// shape as a shipment's, see [`crate::sim_connector::shipment_reference`]).
pub fn port_reference(tenant: &str, order: &str, item: &str) -> String {
    crate::sim_connector::shipment_reference(tenant, order, item)
}

fn item_of(command: &PortingCommand) -> &str {
    match &command.payload {
        PortingCommandPayload::SubmitPort(s) => &s.item_id,
        PortingCommandPayload::CheckPort(c) => &c.item_id,
    }
}

/// Milliseconds since the epoch of a clearing house instant (`YYYY-MM-DDThh:mm:ssZ`).
fn millis(instant: &str) -> Option<i64> {
    let format = time::format_description::well_known::Rfc3339;
    let at = time::OffsetDateTime::parse(instant, &format).ok()?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

impl PortingRelay {
    /// The owner's CPR number, opened for the submission; `None` when the order has none or
    /// the customer's data was erased (the port goes without it).
    async fn owner_cpr(
        &self,
        tenant: &str,
        submit: &SubmitPort,
    ) -> Result<Option<String>, SendError> {
        let Some(sealed) = &submit.owner_cpr_sealed else {
            return Ok(None);
        };
        let key = self
            .keys
            .data_key(tenant, &submit.customer_id)
            .await
            .map_err(|e| SendError::Unavailable(format!("key store: {e}")))?;
        let context = field_context(tenant, &submit.customer_id, CPR_FIELD);
        Ok(key.and_then(|k| k.open_text(sealed, &context).ok()))
    }

    async fn submit(
        &self,
        command: &PortingCommand,
        submit: &SubmitPort,
    ) -> Result<PortingEventPayload, SendError> {
        let tenant = &command.tenant_id;
        let danish = submit.country == "DK";
        let request = PortSubmission {
            scheme: if danish { "och" } else { "pac" }.to_owned(),
            msisdn: submit.msisdn.clone(),
            donor_operator: submit.current_operator.clone(),
            icc: submit.sim_icc.clone().filter(|_| danish),
            owner_cpr: if danish {
                self.owner_cpr(tenant, submit).await?
            } else {
                None
            },
            pac: submit.pac.clone().filter(|_| !danish),
            requested_date: submit.requested_date.clone(),
            reference: port_reference(tenant, &command.order_id, &submit.item_id),
            tenant: tenant.clone(),
        };
        let port = self.carrier.submit(&command.command_id, &request).await?;
        Ok(PortingEventPayload::PortSubmitted(PortSubmitted {
            item_id: submit.item_id.clone(),
            attempt: submit.attempt,
            answer_due_at: millis(&port.answer_due_by).unwrap_or_default(),
            porting_id: port.porting_id,
        }))
    }

    async fn check(&self, check: &CheckPort) -> Result<Vec<PortingEventPayload>, SendError> {
        let port = match self.carrier.port(&check.porting_id).await {
            Ok(port) => port,
            Err(refused @ SendError::Refused { .. }) => {
                tracing::warn!(
                    porting_id = %check.porting_id,
                    error = %refused,
                    "A port request could not be read back; nothing reported."
                );
                return Ok(Vec::new());
            }
            Err(other) => return Err(other),
        };
        Ok(report_of(&check.item_id, port).into_iter().collect())
    }
}

/// What a port request as it stands tells the order (`None`: still with the losing operator).
fn report_of(item_id: &str, port: PortView) -> Option<PortingEventPayload> {
    let item_id = item_id.to_owned();
    match port.status.as_str() {
        "accepted" => Some(PortingEventPayload::PortAccepted(PortAccepted {
            item_id,
            executes_at: port
                .executes_at
                .as_deref()
                .and_then(millis)
                .unwrap_or_default(),
            port_date: port.port_date.unwrap_or_default(),
            porting_id: port.porting_id,
        })),
        "rejected" => {
            let rejection = port.rejection.unwrap_or(super::client::PortRejection {
                code: "other".to_owned(),
                message: "rejected without a reason".to_owned(),
            });
            Some(PortingEventPayload::PortRejected(PortRejected {
                item_id,
                porting_id: port.porting_id,
                code: rejection.code,
                reason: rejection.message,
            }))
        }
        "completed" => Some(PortingEventPayload::PortCompleted(PortCompleted {
            item_id,
            completed_at: port
                .completed_at
                .as_deref()
                .and_then(millis)
                .unwrap_or_default(),
            msisdn: port.msisdn,
            porting_id: port.porting_id,
        })),
        _ => None,
    }
}

impl Relay for PortingRelay {
    type Command = PortingCommand;
    type Event = PortingEvent;
    type Answer = PortingEventPayload;

    fn name(&self) -> &'static str {
        "clearing house"
    }

    async fn send(&self, command: &PortingCommand) -> Result<Vec<PortingEventPayload>, SendError> {
        match &command.payload {
            PortingCommandPayload::SubmitPort(submit) => {
                Ok(vec![self.submit(command, submit).await?])
            }
            PortingCommandPayload::CheckPort(check) => self.check(check).await,
        }
    }

    fn delayed(&self, command: &PortingCommand, why: &str) -> PortingEventPayload {
        PortingEventPayload::PortingDelayed(PortingDelayed {
            item_id: item_of(command).to_owned(),
            reason: why.to_owned(),
        })
    }

    fn refused(
        &self,
        command: &PortingCommand,
        code: String,
        message: String,
    ) -> PortingEventPayload {
        PortingEventPayload::PortRejected(PortRejected {
            item_id: item_of(command).to_owned(),
            porting_id: String::new(),
            code,
            reason: message,
        })
    }

    fn event(&self, command: &PortingCommand, payload: PortingEventPayload) -> PortingEvent {
        PortingEvent {
            event_id: uuid::Uuid::now_v7().to_string(),
            tenant_id: command.tenant_id.clone(),
            order_id: command.order_id.clone(),
            occurred_at: crate::outbox_relay::now_ms(),
            cause: command.command_id.clone(),
            payload,
        }
    }

    fn key(&self, command: &PortingCommand) -> String {
        format!("{}:{}", command.tenant_id, command.order_id)
    }
}

/// Runs the connector until `shutdown` resolves.
///
/// # Errors
/// The consumer or producer cannot be created, the topics not ensured, or an event does not
/// fit its schema.
pub async fn run(
    kafka: KafkaSettings,
    group_id: String,
    codec: Arc<Codec>,
    setup: PortingSetup,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RelayError> {
    let PortingSetup {
        carrier,
        keys,
        options,
        metrics,
    } = setup;
    let relay = PortingRelay { carrier, keys };
    crate::outbox_relay::run(kafka, group_id, codec, relay, options, metrics, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(status: &str) -> PortView {
        PortView {
            porting_id: "OCH0000001".into(),
            msisdn: "+4520123456".into(),
            status: status.into(),
            answer_due_by: "2026-12-09T12:00:00Z".into(),
            port_date: Some("2026-12-08".into()),
            executes_at: Some("2026-12-08T01:00:00Z".into()),
            rejection: None,
            completed_at: Some("2026-12-08T01:00:05Z".into()),
        }
    }

    #[test]
    fn a_port_as_it_stands_becomes_the_report_the_order_needs() {
        assert_eq!(report_of("l1", view("submitted")), None);
        let Some(PortingEventPayload::PortAccepted(accepted)) = report_of("l1", view("accepted"))
        else {
            panic!("an accepted port is reported accepted");
        };
        assert_eq!(accepted.port_date, "2026-12-08");
        assert_eq!(accepted.executes_at, 1_796_691_600_000);
        let Some(PortingEventPayload::PortCompleted(done)) = report_of("l1", view("completed"))
        else {
            panic!("a completed port is reported completed");
        };
        assert_eq!(done.completed_at, 1_796_691_605_000);
        let mut rejected = view("rejected");
        rejected.rejection = Some(super::super::client::PortRejection {
            code: "wrong_icc".into(),
            message: "no".into(),
        });
        let Some(PortingEventPayload::PortRejected(r)) = report_of("l1", rejected) else {
            panic!("a rejected port is reported rejected");
        };
        assert_eq!(
            (r.code.as_str(), r.porting_id.as_str()),
            ("wrong_icc", "OCH0000001")
        );
    }
}
