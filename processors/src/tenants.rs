//! The tenant processor: onboards tenants, changes their settings and suspends them, and
//! publishes each tenant whole to the compacted `tenants` topic.
//!
//! Every tenant command arrives on one partition (see `topics::TENANT_COMMANDS`), so this one
//! task owns the map of domains to tenants and a domain can never be given to two tenants,
//! however close together their requests come.

use std::sync::Arc;

use tcom_schemas::tenant::{Tenant, TenantCommand, TenantCommandPayload, TenantStatus};
use tcom_schemas::topics;
use tcom_state::{Context, Output, ProcessError, Processor, ProcessorFactory, Record};

use crate::codec::BlockingCodec;
use crate::domain::TenantId;
use crate::domain::tenant_rules::validate_settings;
use crate::domain::violation::Violation;
use crate::json_store::{load, save};
use crate::outcome::{Outcome, Refusal};

/// Names the consumer group, changelogs and state folder.
pub const APPLICATION_ID: &str = "tcom-tenants";
/// Tenant id → tenant (JSON).
pub const TENANTS_STORE: &str = "tenants";
/// Normalised domain → tenant id.
pub const DOMAINS_STORE: &str = "domains";

/// Creates the processor of each task.
pub fn factory(codec: BlockingCodec) -> ProcessorFactory {
    let codec = Arc::new(codec);
    Arc::new(move |_partition| {
        Box::new(TenantProcessor {
            codec: codec.clone(),
        })
    })
}

struct TenantProcessor {
    codec: Arc<BlockingCodec>,
}

impl Processor for TenantProcessor {
    fn process(&mut self, ctx: &mut Context<'_>, record: &Record<'_>) -> Result<(), ProcessError> {
        let bytes = record
            .value
            .ok_or_else(|| ProcessError::Permanent("a tenant command without a value".into()))?;
        let command: TenantCommand = self.codec.decode(bytes)?;
        let outcome = match decide(ctx, &command, record.timestamp_ms)? {
            Decision::Changed(tenant) => {
                let value = self.codec.encode(tenant.as_ref())?;
                ctx.emit(Output::new(
                    topics::TENANTS,
                    tenant.tenant_id.as_bytes(),
                    value,
                ));
                tracing::info!(tenant = %tenant.tenant_id, version = tenant.version, "Tenant changed.");
                Outcome::accepted(tenant.version, tenant.as_ref())
            }
            Decision::Refused(outcome) => outcome,
        };
        ctx.reply(outcome.to_bytes());
        Ok(())
    }
}

enum Decision {
    Changed(Box<Tenant>),
    Refused(Outcome),
}

fn refused(refusal: Refusal, code: &str, detail: impl Into<String>) -> Decision {
    Decision::Refused(Outcome::rejected(refusal, code, detail))
}

/// Domains of `domains` held by a tenant other than `tenant_id`.
fn taken_domains(
    ctx: &Context<'_>,
    tenant_id: &str,
    domains: &[String],
) -> Result<Vec<Violation>, ProcessError> {
    let mut taken = Vec::new();
    for (i, domain) in domains.iter().enumerate() {
        if let Some(owner) = load::<String>(ctx, DOMAINS_STORE, domain)?
            && owner != tenant_id
        {
            taken.push(Violation::new(
                "domain_taken",
                format!("domains/{i}"),
                format!("{domain} is already in use by another tenant"),
            ));
        }
    }
    Ok(taken)
}

fn decide(
    ctx: &mut Context<'_>,
    command: &TenantCommand,
    now: i64,
) -> Result<Decision, ProcessError> {
    let Ok(id) = TenantId::parse(&command.tenant_id) else {
        return Ok(refused(
            Refusal::Invalid,
            "invalid_tenant_id",
            format!("{:?} is not a valid tenant id", command.tenant_id),
        ));
    };
    let id = id.as_str();
    let current: Option<Tenant> = load(ctx, TENANTS_STORE, id)?;
    let settings = match &command.payload {
        TenantCommandPayload::OnboardTenant(c) => {
            if current.is_some() {
                return Ok(refused(
                    Refusal::Conflict,
                    "tenant_exists",
                    format!("tenant {id} exists already"),
                ));
            }
            &c.settings
        }
        TenantCommandPayload::UpdateTenantSettings(c) => {
            if current.is_none() {
                return Ok(refused(
                    Refusal::NotFound,
                    "unknown_tenant",
                    format!("no tenant {id}"),
                ));
            }
            &c.settings
        }
        TenantCommandPayload::SuspendTenant(_) => {
            let Some(mut tenant) = current else {
                return Ok(refused(
                    Refusal::NotFound,
                    "unknown_tenant",
                    format!("no tenant {id}"),
                ));
            };
            tenant.status = TenantStatus::Suspended;
            tenant.version += 1;
            tenant.updated_at = now;
            save(ctx, TENANTS_STORE, id, &tenant)?;
            return Ok(Decision::Changed(Box::new(tenant)));
        }
    };

    if let Some(outcome) = Outcome::violated(Refusal::Invalid, validate_settings(settings)) {
        return Ok(Decision::Refused(outcome));
    }
    // Valid settings list their domains normalised (`validate_settings` insists).
    let domains = &settings.domains;
    if let Some(outcome) = Outcome::violated(Refusal::Conflict, taken_domains(ctx, id, domains)?) {
        return Ok(Decision::Refused(outcome));
    }

    if let Some(previous) = &current {
        for old in &previous.settings.domains {
            if !domains.contains(old) {
                ctx.delete(DOMAINS_STORE, old.as_bytes().to_vec())?;
            }
        }
    }
    for domain in domains {
        save(ctx, DOMAINS_STORE, domain, &id.to_owned())?;
    }
    let tenant = Tenant {
        tenant_id: id.to_owned(),
        status: current.as_ref().map_or(TenantStatus::Active, |t| t.status),
        settings: settings.clone(),
        version: current.as_ref().map_or(1, |t| t.version + 1),
        updated_at: now,
    };
    save(ctx, TENANTS_STORE, id, &tenant)?;
    Ok(Decision::Changed(Box::new(tenant)))
}
