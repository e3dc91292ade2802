//! The owner verification of an order: in Denmark the subscription's owner is identified with
//! MitID and must be of age. The signed-in customer types their CPR number; the broker
//! confirms it belongs to the person of this authentication (CPR *matching*: a private shop may
//! never look a CPR up), at most 3 attempts per authentication. The platform then checks the
//! level of assurance of the sign-in and the owner's age on the order date against the shop's
//! policy and tells the order ([`VerifyOwner`]), which proceeds to capture — or ends as the
//! policy says. The CPR travels only sealed with the customer's data key.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use tcom_processors::domain::cpr::Cpr;
use tcom_processors::domain::identity::{
    Assurance, CprMatchAttempts, MAX_CPR_MATCH_ATTEMPTS, OwnerRequirement, check_owner,
};
use tcom_processors::domain::violation::Violation;
use tcom_schemas::order::{OrderCommand, OrderCommandPayload, VerifyOwner};

use super::sign_in_api::broker_problem;
use crate::app::AppState;
use crate::basket_api::JsonBody;
use crate::command_api::{command_id, respond};
use crate::commands::now_ms;
use crate::problem::Problem;
use crate::shoppers::Shopper;

/// The owner's CPR number, as they type it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnerVerificationRequest {
    /// `DDMMYY-SSSS` or `DDMMYYSSSS`.
    pub cpr: String,
}

impl std::fmt::Debug for OwnerVerificationRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OwnerVerificationRequest { cpr: … }")
    }
}

fn not_required() -> Problem {
    Problem::new(
        StatusCode::CONFLICT,
        "owner_verification_not_required",
        "This shop's orders need no owner verification",
    )
}

fn cpr_problem(code: &str, message: String) -> Problem {
    let mut problem = Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_cpr",
        "The CPR number is not valid",
    )
    .with_detail(message.clone());
    problem.violations = vec![Violation::new(code, "cpr", message)];
    problem
}

/// The order's date in Denmark, if the order is this customer's.
async fn order_date(
    state: &AppState,
    tenant: &str,
    customer: &str,
    order_id: &str,
) -> Result<time::Date, Problem> {
    let not_found = || {
        Problem::new(StatusCode::NOT_FOUND, "order_not_found", "No such order")
            .with_detail(format!("no order {order_id} for this caller"))
    };
    uuid::Uuid::parse_str(order_id).map_err(|_| not_found())?;
    let mut tx = state.tenant_tx(tenant).await?;
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT extract(epoch FROM created_at)::bigint FROM orders
         WHERE order_id = $1 AND customer_id = $2",
    )
    .bind(order_id)
    .bind(customer)
    .fetch_optional(&mut *tx)
    .await
    .map_err(|e| Problem::database(&e))?;
    tx.commit().await.map_err(|e| Problem::database(&e))?;
    let (seconds,) = row.ok_or_else(not_found)?;
    // The owner's age counts on the order's date in Denmark, where MitID and CPR apply.
    Ok(tcom_processors::domain::identity::danish_date(seconds))
}

/// Verifies the order's owner: matches the CPR at the broker, checks assurance and age, and
/// tells the order. Answers with the order once it took the verification in.
#[utoipa::path(post, path = "/v1/storefront/orders/{order_id}/owner-verification", tag = "identity",
    security(("customer" = [])),
    request_body(content = OwnerVerificationRequest, content_type = "application/json"),
    responses((status = 200, description = "The order, verified (or ended as the shop's policy says)", body = crate::order_schema::ProductOrder),
        (status = 202, description = "Accepted; the order will show it"),
        (status = 401, description = "No session, or the broker authentication expired (`reauthentication_required`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`order_not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`owner_verification_not_required`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_cpr` (violations `cpr_format`, `cpr_date`), `cpr_mismatch`, `owner_under_age`, `assurance_too_low`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`cpr_match_locked`: 3 attempts used in this sign-in", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`identity_broker_unavailable`", body = Problem, content_type = "application/problem+json")))]
pub async fn verify_owner(
    State(state): State<AppState>,
    shopper: Shopper,
    Path(order_id): Path<String>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<OwnerVerificationRequest>,
) -> Result<Response, Problem> {
    let session = shopper
        .session
        .clone()
        .ok_or_else(|| Problem::unauthenticated("the owner signs in first"))?;
    let tenant = &shopper.tenant;
    let tenant_id = tenant.tenant_id.as_str();
    let customer = session.sub.as_str();
    let settings = tenant.settings.identity.as_ref().ok_or_else(not_required)?;
    let policy = settings
        .owner_verification
        .as_ref()
        .ok_or_else(not_required)?;
    if !settings.cpr_matching {
        return Err(not_required().with_detail("this shop's broker offers no CPR matching"));
    }
    let order_date = order_date(&state, tenant_id, customer, &order_id).await?;
    let cpr = Cpr::parse(&request.cpr).map_err(|e| cpr_problem(e.code(), e.to_string()))?;

    let identity = &state.identity;
    let used = identity
        .sessions
        .spend_cpr_attempt(tenant_id, &session.sid)
        .await?;
    // The rule is the domain's: the count Redis keeps is the attempts made, this one included.
    let Ok(attempts) = CprMatchAttempts::from_used(used.saturating_sub(1)).try_spend() else {
        return Err(Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "cpr_match_locked",
            "No more CPR attempts for this sign-in",
        )
        .with_detail(format!(
            "{MAX_CPR_MATCH_ATTEMPTS} attempts were used: sign in again to try again"
        )));
    };
    let record = identity.sessions.record(tenant_id, &session.sid).await?;
    let access_token = identity
        .sessions
        .broker_access_token(tenant_id, &session.sid, &record)
        .ok_or_else(|| {
            super::sessions::unauthenticated_with(
                "reauthentication_required",
                "this session did not come from the shop's broker: sign in again",
            )
        })?;
    let discovery = identity
        .brokers
        .discover(&settings.issuer)
        .await
        .map_err(|e| broker_problem(&e))?;
    let matched = identity
        .brokers
        .match_cpr(&discovery, &access_token, cpr.digits())
        .await
        .map_err(|e| broker_problem(&e))?;
    if !matched {
        let left = attempts.remaining();
        audit(&state, tenant_id, customer, "cpr_match_failed", &order_id).await?;
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "cpr_mismatch",
            "The CPR number does not belong to the signed-in person",
        )
        .with_detail(format!("{left} attempts left in this sign-in")));
    }

    let assurance = record
        .assurance
        .as_deref()
        .and_then(|a| Assurance::parse(a).ok())
        .unwrap_or(Assurance::Low);
    let requirement = OwnerRequirement {
        min_assurance: Assurance::parse(&policy.min_assurance).unwrap_or(Assurance::High),
        min_age: u32::try_from(policy.min_age).unwrap_or(18),
    };
    let outcome = check_owner(requirement, assurance, &cpr, order_date);
    let key = identity
        .key_store()
        .data_key_or_create(tenant_id, customer)
        .await
        .map_err(|e| super::sessions::key_store_unavailable(&e))?;
    let context = tcom_connectors::personal_data::field_context(tenant_id, customer, "cpr");
    let cpr_sealed = key
        .seal_text(cpr.digits(), &context)
        .map_err(|_| Problem::internal())?;
    let verification = VerifyOwner {
        assurance: assurance.as_str().to_owned(),
        of_age: !matches!(
            outcome,
            Err(tcom_processors::domain::identity::OwnerRefusal::UnderAge { .. })
        ),
        identity_provider: record.identity_provider.clone(),
        cpr_sealed: Some(cpr_sealed),
        name_sealed: record.name_sealed.clone(),
        refusal: outcome.as_ref().err().map(|r| r.code().to_owned()),
    };
    let action = if outcome.is_ok() {
        "owner_verified"
    } else {
        "owner_refused"
    };
    audit(&state, tenant_id, customer, action, &order_id).await?;

    let id = command_id(
        &headers,
        &format!("{tenant_id}:order:{order_id}"),
        Some(&format!("customer:{customer}")),
    )?;
    let command = OrderCommand {
        command_id: id.id.clone(),
        tenant_id: tenant_id.to_owned(),
        order_id: order_id.clone(),
        issued_at: now_ms(),
        customer_id: Some(customer.to_owned()),
        payload: OrderCommandPayload::VerifyOwner(verification),
    };
    let sent = state
        .commands
        .send(&format!("{tenant_id}:{order_id}"), tenant_id, &id, &command)
        .await?;
    if let Err(refusal) = outcome {
        // The order took the failed verification in (and ended as the policy says); the
        // caller learns why.
        let _ = sent;
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            refusal.code(),
            "The owner does not meet the shop's requirements",
        )
        .with_detail(refusal.to_string()));
    }
    Ok(respond(
        sent,
        &format!("/v1/storefront/orders/{order_id}"),
        false,
    ))
}

/// Records who touched the owner's personal data. Without the record nothing is done (503).
async fn audit(
    state: &AppState,
    tenant: &str,
    customer: &str,
    action: &str,
    order: &str,
) -> Result<(), Problem> {
    let mut tx = state.tenant_tx(tenant).await?;
    super::audit(
        &mut tx,
        tenant,
        &format!("customer:{customer}"),
        action,
        customer,
        Some(&format!("order {order}")),
    )
    .await
    .map_err(|e| Problem::database(&e))?;
    tx.commit().await.map_err(|e| Problem::database(&e))
}
