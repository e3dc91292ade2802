//! The platform-operator API: onboarding tenants and changing their settings. Not bound to a
//! tenant host; the caller needs the `platform_operator` role.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tcom_processors::domain::TenantId;
use tcom_schemas::tenant::{
    OnboardTenant, SuspendTenant, TenantCommand, TenantCommandPayload, TenantSettings,
    UpdateTenantSettings,
};
use tcom_schemas::topics;

use crate::app::AppState;
use crate::auth::AdminPrincipal;
use crate::command_api::{command_id, respond};
use crate::commands::now_ms;
use crate::problem::Problem;

/// Body of `POST /v1/platform/tenants`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct OnboardRequest {
    pub tenant_id: String,
    #[schema(value_type = Object)]
    pub settings: TenantSettings,
}

/// Body of `POST /v1/platform/tenants/{id}/suspend`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SuspendRequest {
    pub reason: String,
}

fn valid_tenant_id(id: &str) -> Result<(), Problem> {
    TenantId::parse(id).map(|_| ()).map_err(|e| {
        Problem::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_tenant_id",
            "The tenant id is malformed",
        )
        .with_detail(e.to_string())
    })
}

async fn send(
    state: &AppState,
    headers: &HeaderMap,
    principal: &AdminPrincipal,
    tenant_id: &str,
    payload: TenantCommandPayload,
    created: bool,
) -> Result<Response, Problem> {
    let command_id = command_id(
        headers,
        &format!("platform:{tenant_id}"),
        Some(&principal.idempotency_scope()),
    )?;
    let command = TenantCommand {
        command_id: command_id.id.clone(),
        tenant_id: tenant_id.to_owned(),
        issued_at: now_ms(),
        payload,
    };
    let sent = state
        .commands
        .send(
            topics::TENANT_COMMANDS_KEY,
            tenant_id,
            &command_id,
            &command,
        )
        .await?;
    Ok(respond(
        sent,
        &format!("/v1/platform/tenants/{tenant_id}"),
        created,
    ))
}

/// Onboards a tenant: its domains are served within a second of the 201.
#[utoipa::path(post, path = "/v1/platform/tenants", tag = "platform",
    request_body = OnboardRequest,
    responses(
        (status = 201, description = "Onboarded; the tenant"),
        (status = 202, description = "Accepted; poll the Location"),
        (status = 409, description = "Tenant exists or a domain is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid settings (every violation listed)", body = Problem, content_type = "application/problem+json")
    ))]
pub async fn onboard(
    State(state): State<AppState>,
    principal: AdminPrincipal,
    headers: HeaderMap,
    Json(request): Json<OnboardRequest>,
) -> Result<Response, Problem> {
    principal.require_platform_operator()?;
    valid_tenant_id(&request.tenant_id)?;
    send(
        &state,
        &headers,
        &principal,
        &request.tenant_id,
        TenantCommandPayload::OnboardTenant(OnboardTenant {
            settings: request.settings,
        }),
        true,
    )
    .await
}

/// Replaces a tenant's settings.
#[utoipa::path(put, path = "/v1/platform/tenants/{tenant_id}/settings", tag = "platform",
    request_body(content = Object, description = "TenantSettings"),
    responses((status = 200, description = "The tenant"), (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json")))]
pub async fn update_settings(
    State(state): State<AppState>,
    principal: AdminPrincipal,
    headers: HeaderMap,
    Path(tenant_id): Path<String>,
    Json(settings): Json<TenantSettings>,
) -> Result<Response, Problem> {
    principal.require_platform_operator()?;
    valid_tenant_id(&tenant_id)?;
    send(
        &state,
        &headers,
        &principal,
        &tenant_id,
        TenantCommandPayload::UpdateTenantSettings(UpdateTenantSettings { settings }),
        false,
    )
    .await
}

/// Suspends a tenant: its storefronts stop answering.
#[utoipa::path(post, path = "/v1/platform/tenants/{tenant_id}/suspend", tag = "platform",
    request_body = SuspendRequest,
    responses((status = 200, description = "The tenant")))]
pub async fn suspend(
    State(state): State<AppState>,
    principal: AdminPrincipal,
    headers: HeaderMap,
    Path(tenant_id): Path<String>,
    Json(request): Json<SuspendRequest>,
) -> Result<Response, Problem> {
    principal.require_platform_operator()?;
    valid_tenant_id(&tenant_id)?;
    send(
        &state,
        &headers,
        &principal,
        &tenant_id,
        TenantCommandPayload::SuspendTenant(SuspendTenant {
            reason: request.reason,
        }),
        false,
    )
    .await
}

/// A tenant as the platform currently serves it.
#[utoipa::path(get, path = "/v1/platform/tenants/{tenant_id}", tag = "platform",
    responses((status = 200, description = "The tenant"), (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json")))]
pub async fn get_tenant(
    State(state): State<AppState>,
    principal: AdminPrincipal,
    Path(tenant_id): Path<String>,
) -> Result<Response, Problem> {
    principal.require_platform_operator()?;
    let tenant = state
        .tenants
        .get(&tenant_id)
        .await
        .ok_or_else(Problem::not_found)?;
    Ok(Json(serde_json::to_value(&*tenant).unwrap_or_default()).into_response())
}
