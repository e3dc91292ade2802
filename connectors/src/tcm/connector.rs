//! The TCM connector: relays `tcm.commands` (the order processor's outbox) to the legacy TCM
//! system and reports its answers on `tcm.events` (see [`crate::outbox_relay`] for the
//! delivery guarantees, the circuit breaker and the dead letters).
//!
//! Every create carries an `X-Request-Id` derived from the command id, so a command sent
//! again after a crash or a lost answer finds what the first send created. One TCM customer
//! per platform customer, whichever order or item asks first. TCM unavailable: the order is
//! told once (`ActivationDelayed`); refused (409, 422, 400): `ActivationRefused`, the order
//! holds the item.

use std::future::Future;
use std::sync::Arc;

use tcom_schemas::tcm::{
    ActivateSubscription, ActivationDelayed, ActivationRefused, SubscriptionActivated, TcmCommand,
    TcmCommandPayload, TcmEvent, TcmEventPayload,
};
use tcom_schemas::{Codec, topics};
use tcom_state::client::KafkaSettings;

use super::client::{NewCustomer, NewSubscription, SharedSim, TcmClient, TcmError};
use crate::dead_letter::ConnectorMetrics;
use crate::outbox_relay::{Relay, RelayError, RelayOptions, SendError, now_ms};
use crate::personal_data::{KeyStore, field_context};

/// The connector's consumer group.
pub const GROUP_ID: &str = "tcom-connector-tcm";

/// Why the connector stopped.
pub type TcmConnectorError = RelayError;

/// How the connector treats TCM, and its topics.
pub type TcmOptions = RelayOptions;

/// The platform's TCM topics, the default breaker and backoff.
pub fn default_options() -> TcmOptions {
    RelayOptions::for_topics(topics::TCM_COMMANDS, topics::TCM_EVENTS)
}

/// What the connector talks to and how.
#[derive(Debug)]
pub struct TcmSetup {
    pub client: TcmClient,
    /// Opens the owner's sealed name for TCM; without it TCM gets the customer id.
    pub keys: Option<KeyStore>,
    pub options: TcmOptions,
    pub metrics: Arc<ConnectorMetrics>,
}

struct TcmRelay {
    tcm: TcmClient,
    keys: Option<KeyStore>,
}

impl From<TcmError> for SendError {
    fn from(e: TcmError) -> Self {
        match e {
            TcmError::Unavailable(why) => Self::Unavailable(why),
            TcmError::RateLimited { retry_after } => Self::RateLimited { retry_after },
            TcmError::Refused { code, message } => Self::Refused { code, message },
        }
    }
}

fn item_of(command: &TcmCommand) -> &str {
    let TcmCommandPayload::ActivateSubscription(activate) = &command.payload;
    &activate.item_id
}

impl TcmRelay {
    /// The owner's name for TCM, opened with the customer's data key; the customer id when
    /// there is none (no owner verification) or it cannot be opened (the customer erased).
    async fn owner_name(&self, tenant: &str, activate: &ActivateSubscription) -> String {
        let fallback = || format!("customer {}", activate.customer_id);
        let (Some(sealed), Some(keys)) = (&activate.owner_name_sealed, &self.keys) else {
            return fallback();
        };
        match keys.data_key(tenant, &activate.customer_id).await {
            Ok(Some(key)) => key
                .open_text(
                    sealed,
                    &field_context(tenant, &activate.customer_id, "name"),
                )
                .unwrap_or_else(|_| fallback()),
            Ok(None) => fallback(),
            Err(e) => {
                tracing::warn!(error = %e, "Owner's name not opened for TCM (key store).");
                fallback()
            }
        }
    }

    async fn send_once(
        &self,
        command: &TcmCommand,
        activate: &ActivateSubscription,
    ) -> Result<TcmEventPayload, TcmError> {
        let tenant = &command.tenant_id;
        let customer = self
            .tcm
            .create_customer(
                // One TCM customer per platform customer, whichever order or item asks first.
                &format!("customer:{tenant}:{}", activate.customer_id),
                &NewCustomer {
                    external_ref: activate.customer_id.clone(),
                    tenant: tenant.clone(),
                    name: self.owner_name(tenant, activate).await,
                    birth_date: None,
                    email: None,
                    address: None,
                },
            )
            .await?;
        let subscription = self
            .tcm
            .create_subscription(
                &format!("{}:subscription", command.command_id),
                &NewSubscription {
                    customer_id: customer.customer_id.clone(),
                    external_ref: format!("{}/{}", command.order_id, activate.item_id),
                    tenant: tenant.clone(),
                    plan_code: activate.plan_code.clone(),
                    msisdn: activate.msisdn.clone(),
                    iccid: activate.iccid.clone(),
                    sim_type: activate.sim_type.clone(),
                    binding_end_date: activate.binding_end_date.clone(),
                    shared_data_sims: activate
                        .shared_data_sims
                        .iter()
                        .map(|iccid| SharedSim {
                            iccid: iccid.clone(),
                        })
                        .collect(),
                },
            )
            .await?;
        Ok(TcmEventPayload::SubscriptionActivated(
            SubscriptionActivated {
                item_id: activate.item_id.clone(),
                subscription_id: subscription.subscription_id,
                tcm_customer_id: customer.customer_id,
            },
        ))
    }
}

impl Relay for TcmRelay {
    type Command = TcmCommand;
    type Event = TcmEvent;
    type Answer = TcmEventPayload;

    fn name(&self) -> &'static str {
        "TCM"
    }

    async fn send(&self, command: &TcmCommand) -> Result<Vec<TcmEventPayload>, SendError> {
        let TcmCommandPayload::ActivateSubscription(activate) = &command.payload;
        Ok(vec![self.send_once(command, activate).await?])
    }

    fn delayed(&self, command: &TcmCommand, why: &str) -> TcmEventPayload {
        TcmEventPayload::ActivationDelayed(ActivationDelayed {
            item_id: item_of(command).to_owned(),
            reason: why.to_owned(),
        })
    }

    fn refused(&self, command: &TcmCommand, code: String, message: String) -> TcmEventPayload {
        TcmEventPayload::ActivationRefused(ActivationRefused {
            item_id: item_of(command).to_owned(),
            code,
            reason: message,
        })
    }

    fn event(&self, command: &TcmCommand, payload: TcmEventPayload) -> TcmEvent {
        TcmEvent {
            event_id: uuid::Uuid::now_v7().to_string(),
            tenant_id: command.tenant_id.clone(),
            order_id: command.order_id.clone(),
            occurred_at: now_ms(),
            cause: command.command_id.clone(),
            payload,
        }
    }

    fn key(&self, command: &TcmCommand) -> String {
        format!("{}:{}", command.tenant_id, command.order_id)
    }
}

/// Runs the connector until `shutdown` resolves.
///
/// # Errors
/// The consumer or producer cannot be created, or the topics not ensured.
pub async fn run(
    kafka: KafkaSettings,
    group_id: String,
    codec: Arc<Codec>,
    setup: TcmSetup,
    shutdown: impl Future<Output = ()>,
) -> Result<(), TcmConnectorError> {
    let TcmSetup {
        client,
        keys,
        options,
        metrics,
    } = setup;
    let relay = TcmRelay { tcm: client, keys };
    crate::outbox_relay::run(kafka, group_id, codec, relay, options, metrics, shutdown).await
}
