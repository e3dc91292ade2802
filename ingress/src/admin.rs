//! The brand-partner admin API: a tenant's offerings and campaigns. Served on the tenant's
//! own hosts; the token's `tenant` claim must name the tenant of the host, and its roles
//! decide reads (`catalog_viewer`, `catalog_manager`, `brand_admin`) and writes
//! (`catalog_manager`, `brand_admin`). Writes are commands answered by the catalog
//! processor; reads come from the RLS-protected views.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sqlx::Row;
use tcom_processors::domain::violation::is_valid_entity_id;
use tcom_schemas::campaign::{
    CampaignCommand, CampaignCommandPayload, CampaignDefinition, EndCampaign, UpsertCampaign,
};
use tcom_schemas::catalog::{
    ActivateOffering, CatalogCommand, CatalogCommandPayload, OfferingDefinition, RetireOffering,
    UpsertOffering,
};
use tcom_schemas::tenant::Tenant;

use crate::app::AppState;
use crate::auth::{AdminPrincipal, CATALOG_READERS, CATALOG_WRITERS};
use crate::command_api::{command_id, respond};
use crate::commands::now_ms;
use crate::problem::Problem;
use crate::tenancy::CurrentTenant;

/// Optional reason for retiring or ending.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct ReasonRequest {
    #[serde(default)]
    pub reason: Option<String>,
}

fn valid_id(id: &str, what: &str) -> Result<(), Problem> {
    if is_valid_entity_id(id) {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_id",
            "The identifier is malformed",
        )
        .with_detail(format!(
            "a {what} id has 1 to 64 lower-case letters, digits, '-', '_' or '.'"
        )))
    }
}

/// Sends one catalog command about `entity_id` (an offering or a campaign, named by `kind`)
/// and answers with its outcome. `build` makes the command from its id and time.
async fn send_catalog_command<T: tcom_schemas::Contract>(
    state: &AppState,
    tenant: &Tenant,
    headers: &HeaderMap,
    principal: &AdminPrincipal,
    kind: &str,
    entity_id: &str,
    build: impl FnOnce(String, i64) -> T,
) -> Result<Response, Problem> {
    valid_id(entity_id, kind)?;
    let id = command_id(
        headers,
        &format!("{}:{kind}:{entity_id}", tenant.tenant_id),
        Some(&principal.idempotency_scope()),
    )?;
    let command = build(id.id.clone(), now_ms());
    // Keyed by tenant: one task decides all of a tenant's catalog changes in order.
    let sent = state
        .commands
        .send(&tenant.tenant_id, &tenant.tenant_id, &id, &command)
        .await?;
    Ok(respond(
        sent,
        &format!("/v1/admin/{kind}s/{entity_id}"),
        false,
    ))
}

async fn send_offering(
    state: &AppState,
    tenant: &Tenant,
    headers: &HeaderMap,
    principal: &AdminPrincipal,
    offering_id: &str,
    payload: CatalogCommandPayload,
) -> Result<Response, Problem> {
    send_catalog_command(
        state,
        tenant,
        headers,
        principal,
        "offering",
        offering_id,
        |command_id, issued_at| CatalogCommand {
            command_id,
            tenant_id: tenant.tenant_id.clone(),
            offering_id: offering_id.to_owned(),
            issued_at,
            payload,
        },
    )
    .await
}

async fn send_campaign(
    state: &AppState,
    tenant: &Tenant,
    headers: &HeaderMap,
    principal: &AdminPrincipal,
    campaign_id: &str,
    payload: CampaignCommandPayload,
) -> Result<Response, Problem> {
    send_catalog_command(
        state,
        tenant,
        headers,
        principal,
        "campaign",
        campaign_id,
        |command_id, issued_at| CampaignCommand {
            command_id,
            tenant_id: tenant.tenant_id.clone(),
            campaign_id: campaign_id.to_owned(),
            issued_at,
            payload,
        },
    )
    .await
}

/// Creates or replaces an offering (TMF620 shape). New offerings start as DRAFT.
#[utoipa::path(put, path = "/v1/admin/offerings/{offering_id}", tag = "admin",
    request_body(content = Object, description = "OfferingDefinition"),
    responses(
        (status = 200, description = "The offering"),
        (status = 403, description = "Token of another tenant or without the role", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Every violated rule, e.g. binding_exceeds_legal_cap", body = Problem, content_type = "application/problem+json")
    ))]
pub async fn put_offering(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    principal: AdminPrincipal,
    headers: HeaderMap,
    Path(offering_id): Path<String>,
    Json(definition): Json<OfferingDefinition>,
) -> Result<Response, Problem> {
    principal.require_tenant_role(&tenant, CATALOG_WRITERS)?;
    send_offering(
        &state,
        &tenant,
        &headers,
        &principal,
        &offering_id,
        CatalogCommandPayload::UpsertOffering(UpsertOffering { definition }),
    )
    .await
}

/// Puts an offering on sale (after re-checking it against the tenant's current rules).
#[utoipa::path(post, path = "/v1/admin/offerings/{offering_id}/activate", tag = "admin",
    responses((status = 200, description = "The offering")))]
pub async fn activate_offering(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    principal: AdminPrincipal,
    headers: HeaderMap,
    Path(offering_id): Path<String>,
) -> Result<Response, Problem> {
    principal.require_tenant_role(&tenant, CATALOG_WRITERS)?;
    send_offering(
        &state,
        &tenant,
        &headers,
        &principal,
        &offering_id,
        CatalogCommandPayload::ActivateOffering(ActivateOffering { note: None }),
    )
    .await
}

/// Takes an offering off sale for good.
#[utoipa::path(post, path = "/v1/admin/offerings/{offering_id}/retire", tag = "admin",
    responses((status = 200, description = "The offering")))]
pub async fn retire_offering(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    principal: AdminPrincipal,
    headers: HeaderMap,
    Path(offering_id): Path<String>,
    body: Option<Json<ReasonRequest>>,
) -> Result<Response, Problem> {
    principal.require_tenant_role(&tenant, CATALOG_WRITERS)?;
    let reason = body.and_then(|Json(b)| b.reason);
    send_offering(
        &state,
        &tenant,
        &headers,
        &principal,
        &offering_id,
        CatalogCommandPayload::RetireOffering(RetireOffering { reason }),
    )
    .await
}

/// Creates or replaces a campaign.
#[utoipa::path(put, path = "/v1/admin/campaigns/{campaign_id}", tag = "admin",
    request_body(content = Object, description = "CampaignDefinition"),
    responses(
        (status = 200, description = "The campaign"),
        (status = 422, description = "Every violated rule, e.g. indirect_binding_exceeds_legal_cap", body = Problem, content_type = "application/problem+json")
    ))]
pub async fn put_campaign(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    principal: AdminPrincipal,
    headers: HeaderMap,
    Path(campaign_id): Path<String>,
    Json(definition): Json<CampaignDefinition>,
) -> Result<Response, Problem> {
    principal.require_tenant_role(&tenant, CATALOG_WRITERS)?;
    send_campaign(
        &state,
        &tenant,
        &headers,
        &principal,
        &campaign_id,
        CampaignCommandPayload::UpsertCampaign(UpsertCampaign { definition }),
    )
    .await
}

/// Ends a campaign.
#[utoipa::path(post, path = "/v1/admin/campaigns/{campaign_id}/end", tag = "admin",
    responses((status = 200, description = "The campaign")))]
pub async fn end_campaign(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    principal: AdminPrincipal,
    headers: HeaderMap,
    Path(campaign_id): Path<String>,
    body: Option<Json<ReasonRequest>>,
) -> Result<Response, Problem> {
    principal.require_tenant_role(&tenant, CATALOG_WRITERS)?;
    let reason = body.and_then(|Json(b)| b.reason);
    send_campaign(
        &state,
        &tenant,
        &headers,
        &principal,
        &campaign_id,
        CampaignCommandPayload::EndCampaign(EndCampaign { reason }),
    )
    .await
}

/// A JSON list from the views, RLS-scoped to the tenant.
async fn list(state: &AppState, tenant: &Tenant, sql: &str) -> Result<Response, Problem> {
    let mut tx = state.tenant_tx(&tenant.tenant_id).await?;
    let rows = sqlx::query(sql)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| Problem::database(&e))?;
    tx.commit().await.map_err(|e| Problem::database(&e))?;
    let items: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| r.get::<serde_json::Value, _>(0))
        .collect();
    Ok(Json(serde_json::json!({ "items": items })).into_response())
}

/// The tenant's offerings in every lifecycle state.
#[utoipa::path(get, path = "/v1/admin/offerings", tag = "admin",
    responses((status = 200, description = "The offerings")))]
pub async fn list_offerings(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    principal: AdminPrincipal,
) -> Result<Response, Problem> {
    principal.require_tenant_role(&tenant, CATALOG_READERS)?;
    // No tenant filter on purpose: Row-Level Security scopes the query.
    list(
        &state,
        &tenant,
        "SELECT jsonb_build_object('offering_id', offering_id, 'lifecycle_status', lifecycle_status,
            'version', version, 'definition', definition) FROM offerings ORDER BY offering_id",
    )
    .await
}

/// The tenant's campaigns, running and ended.
#[utoipa::path(get, path = "/v1/admin/campaigns", tag = "admin",
    responses((status = 200, description = "The campaigns")))]
pub async fn list_campaigns(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    principal: AdminPrincipal,
) -> Result<Response, Problem> {
    principal.require_tenant_role(&tenant, CATALOG_READERS)?;
    list(
        &state,
        &tenant,
        "SELECT jsonb_build_object('campaign_id', campaign_id, 'status', status,
            'version', version, 'definition', definition) FROM campaigns ORDER BY priority DESC, campaign_id",
    )
    .await
}

/// One row of a view, RLS-scoped to the tenant: 404 when the tenant has none with `id`.
async fn one(state: &AppState, tenant: &Tenant, sql: &str, id: &str) -> Result<Response, Problem> {
    let mut tx = state.tenant_tx(&tenant.tenant_id).await?;
    let row = sqlx::query(sql)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| Problem::database(&e))?;
    tx.commit().await.map_err(|e| Problem::database(&e))?;
    match row {
        Some(row) => Ok(Json(row.get::<serde_json::Value, _>(0)).into_response()),
        None => Err(Problem::not_found()),
    }
}

/// One offering, as the views have it: where a 202 answer to a change points.
#[utoipa::path(get, path = "/v1/admin/offerings/{offering_id}", tag = "admin",
    responses((status = 200, description = "The offering"),
        (status = 404, description = "No such offering of this tenant", body = Problem, content_type = "application/problem+json")))]
pub async fn get_offering(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    principal: AdminPrincipal,
    Path(offering_id): Path<String>,
) -> Result<Response, Problem> {
    principal.require_tenant_role(&tenant, CATALOG_READERS)?;
    one(
        &state,
        &tenant,
        "SELECT jsonb_build_object('offering_id', offering_id, 'lifecycle_status', lifecycle_status,
            'version', version, 'definition', definition) FROM offerings WHERE offering_id = $1",
        &offering_id,
    )
    .await
}

/// One campaign, as the views have it: where a 202 answer to a change points.
#[utoipa::path(get, path = "/v1/admin/campaigns/{campaign_id}", tag = "admin",
    responses((status = 200, description = "The campaign"),
        (status = 404, description = "No such campaign of this tenant", body = Problem, content_type = "application/problem+json")))]
pub async fn get_campaign(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    principal: AdminPrincipal,
    Path(campaign_id): Path<String>,
) -> Result<Response, Problem> {
    principal.require_tenant_role(&tenant, CATALOG_READERS)?;
    one(
        &state,
        &tenant,
        "SELECT jsonb_build_object('campaign_id', campaign_id, 'status', status,
            'version', version, 'definition', definition) FROM campaigns WHERE campaign_id = $1",
        &campaign_id,
    )
    .await
}
