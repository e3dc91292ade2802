//! The SIM connector: relays `sim.commands` (the order processor's outbox) to the SM-DP+ and
//! the SIM fulfilment house, and reports on `sim.events` (see [`crate::outbox_relay`] for
//! the delivery guarantees, the circuit breaker and the dead letters).
//!
//! - `PrepareEsimProfiles`: per profile an ES2+ `downloadOrder` (the SM-DP+ picks the
//!   profile) and a `confirmOrder` with the release flag; the activation code, and the
//!   confirmation code when the account's profiles need one, are sealed with the customer's
//!   data key before they leave (whoever holds them can install the profile). The
//!   confirmation code is derived from the command with a platform key, so a command sent
//!   again after a crash confirms with the same code and the SM-DP+ replays its answer.
//! - `ShipSims`: one shipment per order item with the checkout's delivery address (opened
//!   with the customer's data key), idempotent on the command id.
//! - `TrackShipment` (from a verified logistics webhook): the shipment's tracking events read
//!   from the fulfilment house, each reported; the order ignores those it has applied.
//!
//! Every ES2+ call and shipment create carries an idempotency key derived from the command
//! id (`functionCallIdentifier`, `Idempotency-Key`).

use std::future::Future;
use std::sync::Arc;

use tcom_processors::domain::contact::ContactDetails;
use tcom_schemas::sim::{
    EsimProfile, EsimProfilesReady, PrepareEsimProfiles, ShipSims, ShipmentCreated,
    ShipmentTracked, SimCommand, SimCommandPayload, SimDeliveryDelayed, SimDeliveryRefused,
    SimEvent, SimEventPayload, TrackShipment,
};
use tcom_schemas::{Codec, topics};
use tcom_state::client::KafkaSettings;

use crate::dead_letter::ConnectorMetrics;
use crate::esim::es2plus::{Es2PlusClient, Es2PlusError};
use crate::logistics::client::{
    LogisticsClient, LogisticsError, NewShipment, Recipient, ShipmentItem, ShipmentStatus,
};
use crate::outbox_relay::{Relay, RelayError, RelayOptions, SendError, now_ms};
use crate::personal_data::{KeyStore, KeyStoreError, SecretKey, field_context};

/// The connector's consumer group.
pub const GROUP_ID: &str = "tcom-connector-sim";

/// The field context an eSIM's activation code is sealed under (with the ICCID).
pub fn activation_code_field(iccid: &str) -> String {
    format!("esim-activation-code:{iccid}")
}

/// The field context an eSIM's confirmation code is sealed under (with the ICCID).
pub fn confirmation_code_field(iccid: &str) -> String {
    format!("esim-confirmation-code:{iccid}")
}

/// The field context the checkout's contact and delivery details are sealed under.
pub const CONTACT_FIELD: &str = "contact";

/// The platform's SIM topics, the default breaker and backoff.
pub fn default_options() -> RelayOptions {
    RelayOptions::for_topics(topics::SIM_COMMANDS, topics::SIM_EVENTS)
}

/// What the connector talks to and how.
#[derive(Debug)]
pub struct SimSetup {
    pub smdp: Es2PlusClient,
    pub logistics: LogisticsClient,
    /// Seals the eSIM codes and opens the delivery address, with the customer's data key.
    pub keys: KeyStore,
    /// The platform's master secret: the confirmation codes are derived from it.
    pub master_key: String,
    /// Whether the SM-DP+ account's profiles need a confirmation code on download.
    pub confirmation_codes: bool,
    pub options: RelayOptions,
    pub metrics: Arc<ConnectorMetrics>,
}

struct SimRelay {
    smdp: Es2PlusClient,
    logistics: LogisticsClient,
    keys: KeyStore,
    confirmation_key: SecretKey,
    confirmation_codes: bool,
}

impl From<Es2PlusError> for SendError {
    fn from(e: Es2PlusError) -> Self {
        match e {
            Es2PlusError::Unavailable(why) => Self::Unavailable(why),
            Es2PlusError::Refused {
                subject_code,
                reason_code,
                message,
            } => Self::Refused {
                code: format!("{subject_code}/{reason_code}"),
                message,
            },
            // The SM-DP+ answered something no device could use: not worth repeating.
            invalid @ Es2PlusError::InvalidActivationCode(_) => Self::Refused {
                code: "invalid_activation_code".to_owned(),
                message: invalid.to_string(),
            },
        }
    }
}

impl From<LogisticsError> for SendError {
    fn from(e: LogisticsError) -> Self {
        match e {
            LogisticsError::Unavailable(why) => Self::Unavailable(why),
            LogisticsError::RateLimited { retry_after } => Self::RateLimited { retry_after },
            LogisticsError::Refused {
                code,
                message,
                fields,
            } => {
                let fields: Vec<String> = fields
                    .iter()
                    .map(|f| format!("{}: {}", f.field, f.message))
                    .collect();
                let message = if fields.is_empty() {
                    message
                } else {
                    format!("{message} ({})", fields.join("; "))
                };
                Self::Refused { code, message }
            }
        }
    }
}

fn key_store_down(e: &KeyStoreError) -> SendError {
    SendError::Unavailable(format!("key store: {e}"))
}

fn item_of(command: &SimCommand) -> &str {
    match &command.payload {
        SimCommandPayload::PrepareEsimProfiles(p) => &p.item_id,
        SimCommandPayload::ShipSims(s) => &s.item_id,
        SimCommandPayload::TrackShipment(t) => &t.item_id,
    }
}

impl SimRelay {
    /// An 8-digit confirmation code for profile `n` of the command: secret (keyed with the
    /// platform's master secret) and the same every time the command is sent.
    fn confirmation_code(&self, command: &SimCommand, n: i32) -> String {
        let digest = self
            .confirmation_key
            .digest(&format!("{}:{n}", command.command_id));
        let number = u64::from_str_radix(&digest[..15], 16).unwrap_or_default();
        format!("{:08}", number % 100_000_000)
    }

    async fn prepare_profiles(
        &self,
        command: &SimCommand,
        prepare: &PrepareEsimProfiles,
    ) -> Result<SimEventPayload, SendError> {
        let tenant = &command.tenant_id;
        let customer = &prepare.customer_id;
        let key = self
            .keys
            .data_key_or_create(tenant, customer)
            .await
            .map_err(|e| key_store_down(&e))?;
        let mut profiles = Vec::new();
        for n in 0..prepare.profiles.max(1) {
            let call = format!("{}:{n}", command.command_id);
            let reserved = self
                .smdp
                .download_order(&format!("{call}:download"), None)
                .await?;
            let confirmation = self
                .confirmation_codes
                .then(|| self.confirmation_code(command, n));
            let confirmed = self
                .smdp
                .confirm_order(
                    &format!("{call}:confirm"),
                    &reserved.iccid,
                    confirmation.as_deref(),
                )
                .await?;
            let seal = |text: &str, field: String| {
                key.seal_text(text, &field_context(tenant, customer, &field))
                    .map_err(|e| SendError::Unavailable(format!("sealing: {e}")))
            };
            profiles.push(EsimProfile {
                activation_code_sealed: seal(
                    &confirmed.activation_code.to_lpa_string(),
                    activation_code_field(&reserved.iccid),
                )?,
                confirmation_code_sealed: confirmation
                    .map(|code| seal(&code, confirmation_code_field(&reserved.iccid)))
                    .transpose()?,
                iccid: reserved.iccid,
            });
        }
        Ok(SimEventPayload::EsimProfilesReady(EsimProfilesReady {
            item_id: prepare.item_id.clone(),
            profiles,
        }))
    }

    /// The checkout's delivery address and the recipient's name, opened with the customer's
    /// data key.
    async fn recipient(
        &self,
        tenant: &str,
        ship: &ShipSims,
    ) -> Result<Result<Recipient, String>, SendError> {
        let Some(sealed) = &ship.recipient_sealed else {
            return Ok(Err("the order has no delivery address".to_owned()));
        };
        let Some(key) = self
            .keys
            .data_key(tenant, &ship.customer_id)
            .await
            .map_err(|e| key_store_down(&e))?
        else {
            return Ok(Err("the customer's data was erased".to_owned()));
        };
        let context = field_context(tenant, &ship.customer_id, CONTACT_FIELD);
        let details: Option<ContactDetails> = key
            .open_text(sealed, &context)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok());
        let Some(details) = details else {
            return Ok(Err("the delivery address does not open".to_owned()));
        };
        let Some(address) = details.delivery_address else {
            return Ok(Err("the order has no delivery address".to_owned()));
        };
        let name = details
            .contact
            .map_or_else(|| format!("customer {}", ship.customer_id), |c| c.name);
        Ok(Ok(Recipient {
            name,
            street: address.street,
            postal_code: address.postal_code,
            city: address.city,
            country: address.country,
        }))
    }

    async fn ship(
        &self,
        command: &SimCommand,
        ship: &ShipSims,
    ) -> Result<SimEventPayload, SendError> {
        let recipient = match self.recipient(&command.tenant_id, ship).await? {
            Ok(recipient) => recipient,
            Err(why) => {
                return Err(SendError::Refused {
                    code: "delivery_address_missing".to_owned(),
                    message: why,
                });
            }
        };
        let shipment = self
            .logistics
            .create_shipment(
                &format!("{}:shipment", command.command_id),
                &NewShipment {
                    // Names the order item for the webhooks: tenant, order, item.
                    reference: shipment_reference(
                        &command.tenant_id,
                        &command.order_id,
                        &ship.item_id,
                    ),
                    tenant: command.tenant_id.clone(),
                    recipient,
                    items: vec![ShipmentItem::sims(
                        u32::try_from(ship.sims.max(1)).unwrap_or(1),
                    )],
                },
            )
            .await?;
        Ok(SimEventPayload::ShipmentCreated(ShipmentCreated {
            item_id: ship.item_id.clone(),
            shipment_id: shipment.shipment_id,
            tracking_number: shipment.tracking_number,
            iccids: shipment.iccids,
        }))
    }

    /// The shipment's tracking events. A read the house refuses (an unknown shipment, say)
    /// reports nothing rather than holding the order: the parcel is still on its way, and
    /// the next webhook reads again. An outage is retried like any other.
    async fn track(&self, track: &TrackShipment) -> Result<Vec<SimEventPayload>, SendError> {
        let events = match self.logistics.events_after(&track.shipment_id, 0).await {
            Ok(events) => events,
            Err(refused @ LogisticsError::Refused { .. }) => {
                tracing::warn!(
                    shipment = %track.shipment_id,
                    error = %refused,
                    "A shipment's tracking could not be read; nothing reported."
                );
                return Ok(Vec::new());
            }
            Err(other) => return Err(other.into()),
        };
        Ok(events
            .into_iter()
            .filter_map(|event| {
                let status = match event.status {
                    ShipmentStatus::Shipped => "shipped",
                    ShipmentStatus::Delivered => "delivered",
                    ShipmentStatus::Returned => "returned",
                    ShipmentStatus::Created | ShipmentStatus::Unknown => return None,
                };
                Some(SimEventPayload::ShipmentTracked(ShipmentTracked {
                    item_id: track.item_id.clone(),
                    shipment_id: track.shipment_id.clone(),
                    status: status.to_owned(),
                    sequence: i64::try_from(event.seq).unwrap_or(i64::MAX),
                }))
            })
            .collect())
    }
}

/// The shipment's `reference`: the order item it delivers, `tenant:order:item`.
pub fn shipment_reference(tenant: &str, order: &str, item: &str) -> String {
    format!("{tenant}:{order}:{item}")
}

/// The order item a shipment's `reference` names: `(tenant, order, item)`.
pub fn parse_shipment_reference(reference: &str) -> Option<(&str, &str, &str)> {
    let mut parts = reference.splitn(3, ':');
    let tenant = parts.next().filter(|p| !p.is_empty())?;
    let order = parts.next().filter(|p| !p.is_empty())?;
    let item = parts.next().filter(|p| !p.is_empty())?;
    Some((tenant, order, item))
}

impl Relay for SimRelay {
    type Command = SimCommand;
    type Event = SimEvent;
    type Answer = SimEventPayload;

    fn name(&self) -> &'static str {
        "SIM provider"
    }

    async fn send(&self, command: &SimCommand) -> Result<Vec<SimEventPayload>, SendError> {
        match &command.payload {
            SimCommandPayload::PrepareEsimProfiles(prepare) => {
                Ok(vec![self.prepare_profiles(command, prepare).await?])
            }
            SimCommandPayload::ShipSims(ship) => Ok(vec![self.ship(command, ship).await?]),
            SimCommandPayload::TrackShipment(track) => self.track(track).await,
        }
    }

    fn delayed(&self, command: &SimCommand, why: &str) -> SimEventPayload {
        SimEventPayload::SimDeliveryDelayed(SimDeliveryDelayed {
            item_id: item_of(command).to_owned(),
            reason: why.to_owned(),
        })
    }

    fn refused(&self, command: &SimCommand, code: String, message: String) -> SimEventPayload {
        SimEventPayload::SimDeliveryRefused(SimDeliveryRefused {
            item_id: item_of(command).to_owned(),
            code,
            reason: message,
        })
    }

    fn event(&self, command: &SimCommand, payload: SimEventPayload) -> SimEvent {
        SimEvent {
            event_id: uuid::Uuid::now_v7().to_string(),
            tenant_id: command.tenant_id.clone(),
            order_id: command.order_id.clone(),
            occurred_at: now_ms(),
            cause: command.command_id.clone(),
            payload,
        }
    }

    fn key(&self, command: &SimCommand) -> String {
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
    setup: SimSetup,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RelayError> {
    let SimSetup {
        smdp,
        logistics,
        keys,
        master_key,
        confirmation_codes,
        options,
        metrics,
    } = setup;
    let relay = SimRelay {
        smdp,
        logistics,
        keys,
        confirmation_key: SecretKey::derive(&master_key, "esim-confirmation-code"),
        confirmation_codes,
    };
    crate::outbox_relay::run(kafka, group_id, codec, relay, options, metrics, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipment_references_name_the_tenant_the_order_and_the_item() {
        let reference = shipment_reference("nordlys", "b1", "l1");
        assert_eq!(
            parse_shipment_reference(&reference),
            Some(("nordlys", "b1", "l1"))
        );
        assert_eq!(parse_shipment_reference("nordlys:b1"), None);
        assert_eq!(parse_shipment_reference("nordlys::l1"), None);
        assert_eq!(parse_shipment_reference(""), None);
    }
}
