//! The storefront basket API. Changes are commands to the basket processor answered
//! synchronously (200/201 with the basket's new version and priced snapshot, 4xx problem
//! with every broken rule, 202 + Location when the answer takes too long); reads come from
//! the RLS-protected basket view and can wait for a version the caller has seen
//! (`?min_version=`), which gives read-your-writes.
//!
//! Who may touch a basket: its customer (customer token), or, while it has no customer,
//! whoever holds its guest token. Anyone else is told it does not exist. The processor checks
//! this again for commands; the ingress checks it for reads.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use sqlx::Row;
use tcom_processors::domain::basket::{Basket, readiness};
use tcom_schemas::basket::{
    AbandonBasket, AddOnSelection, AddPlanLine, BasketCommand, BasketCommandPayload, ClaimBasket,
    CreateBasket, MergeInto, NewNumber, NumberChoice, PortIn, RemoveLine, SimType, UpdateLine,
};

use crate::app::AppState;
use crate::command_api::{command_id, respond};
use crate::commands::now_ms;
use crate::problem::Problem;
use crate::shoppers::{BASKET_TOKEN_HEADER, Shopper};

/// How long a read waits for the view to reach `min_version`.
const READ_YOUR_WRITES_WAIT: Duration = Duration::from_secs(2);

/// A JSON body whose syntax and shape errors are problems with a stable code.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_problem(&rejection)),
        }
    }
}

fn json_problem(rejection: &JsonRejection) -> Problem {
    let (status, code, title) = match rejection {
        JsonRejection::JsonDataError(_) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "The body does not have the expected fields",
        ),
        JsonRejection::MissingJsonContentType(_) => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Send the body as application/json",
        ),
        JsonRejection::BytesRejection(_) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "The request body is too large",
        ),
        _ => (
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "The body is not valid JSON",
        ),
    };
    Problem::new(status, code, title).with_detail(rejection.body_text())
}

/// A new basket.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBasketRequest {
    /// A sales channel of the shop, e.g. `web`.
    pub channel: String,
    /// The customer segment; `consumer` when left out.
    #[serde(default)]
    pub segment: Option<String>,
}

/// How a new line gets its number.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum NumberRequest {
    /// A number from the shop's pool (see `GET /v1/storefront/numbers`), held while shopping.
    NewNumber { msisdn: String },
    /// The shopper's current number, moved from another operator.
    PortIn {
        msisdn: String,
        current_operator: String,
        #[serde(default)]
        sim_icc: Option<String>,
        /// `YYYY-MM-DD`; left out: as soon as possible.
        #[serde(default)]
        desired_port_date: Option<String>,
        /// UK shops: the Porting Authorisation Code the current provider gave (3 letters and
        /// 6 digits, valid 30 days); required there, refused elsewhere.
        #[serde(default)]
        pac: Option<String>,
    },
}

/// Add-ons such as data-sharing cards.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddOnRequest {
    pub offering_id: String,
    pub quantity: i32,
    /// Data-sharing cards: `PSIM` or `ESIM` for these cards; left out: the line's SIM type.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub sim_type: Option<SimType>,
}

/// A plan line.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddLineRequest {
    /// Chosen by the client (unique in the basket); generated when left out.
    #[serde(default)]
    pub line_id: Option<String>,
    pub offering_id: String,
    /// `PSIM` or `ESIM`.
    #[schema(value_type = String)]
    pub sim_type: SimType,
    pub number: NumberRequest,
    /// The binding term accepted, when the plan has one.
    #[serde(default)]
    pub binding_months: Option<i32>,
    #[serde(default)]
    pub add_ons: Vec<AddOnRequest>,
}

/// A change to a line; fields left out stay as they are.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateLineRequest {
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub sim_type: Option<SimType>,
    #[serde(default)]
    pub binding_months: Option<i32>,
    #[serde(default)]
    pub add_ons: Option<Vec<AddOnRequest>>,
}

/// What to do with a guest basket when its shopper signs in.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LoginStrategy {
    /// Move the guest basket's lines into the customer's current basket (the guest basket
    /// ends as MERGED); when the customer has none, the guest basket becomes theirs.
    MergeIntoCustomerBasket,
    /// The guest basket becomes the customer's basket; their previous one is abandoned.
    UseGuestBasket,
}

/// Signing in with a guest basket.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub strategy: LoginStrategy,
}

/// `?min_version=` on reads.
#[derive(Debug, Deserialize)]
pub struct ReadQuery {
    #[serde(default)]
    pub min_version: Option<i64>,
}

fn basket_not_found(basket_id: &str) -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "basket_not_found", "No such basket")
        .with_detail(format!("no basket {basket_id} for this shopper"))
}

/// Basket ids are UUIDs (generated here); anything else names no basket.
fn check_basket_id(basket_id: &str) -> Result<(), Problem> {
    uuid::Uuid::parse_str(basket_id)
        .map(|_| ())
        .map_err(|_| basket_not_found(basket_id))
}

fn to_add_ons(add_ons: Vec<AddOnRequest>) -> Vec<AddOnSelection> {
    add_ons
        .into_iter()
        .map(|a| AddOnSelection {
            offering_id: a.offering_id,
            quantity: a.quantity,
            sim_type: a.sim_type,
        })
        .collect()
}

/// Days since the Unix epoch of a `YYYY-MM-DD` date.
pub(crate) fn epoch_day(text: &str) -> Result<i32, Problem> {
    let invalid = || {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_port_date",
            "The port date is malformed",
        )
        .with_detail("write the date as YYYY-MM-DD")
    };
    let mut parts = text.splitn(3, '-');
    let (Some(y), Some(m), Some(d)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(invalid());
    };
    let year: i32 = y.parse().map_err(|_| invalid())?;
    let month: u8 = m.parse().map_err(|_| invalid())?;
    let day: u8 = d.parse().map_err(|_| invalid())?;
    let month = time::Month::try_from(month).map_err(|_| invalid())?;
    let date = time::Date::from_calendar_date(year, month, day).map_err(|_| invalid())?;
    Ok(date.to_julian_day()
        - time::Date::from_calendar_date(1970, time::Month::January, 1)
            .expect("the epoch is a date")
            .to_julian_day())
}

impl AddLineRequest {
    fn into_command(self) -> Result<AddPlanLine, Problem> {
        let number = match self.number {
            NumberRequest::NewNumber { msisdn } => NumberChoice::NewNumber(NewNumber { msisdn }),
            NumberRequest::PortIn {
                msisdn,
                current_operator,
                sim_icc,
                desired_port_date,
                pac,
            } => NumberChoice::PortIn(PortIn {
                msisdn,
                current_operator,
                sim_icc,
                desired_port_date: desired_port_date.as_deref().map(epoch_day).transpose()?,
                pac,
            }),
        };
        Ok(AddPlanLine {
            line_id: self.line_id.unwrap_or_else(|| {
                format!("line-{}", &uuid::Uuid::now_v7().simple().to_string()[20..])
            }),
            offering_id: self.offering_id,
            sim_type: self.sim_type,
            number,
            binding_months: self.binding_months,
            add_ons: to_add_ons(self.add_ons),
        })
    }
}

/// Sends a basket command as `shopper` and answers with its outcome (also checkout's).
pub(crate) async fn send_basket_command(
    state: &AppState,
    shopper: &Shopper,
    headers: &HeaderMap,
    basket_id: &str,
    payload: BasketCommandPayload,
    created: bool,
) -> Result<Response, Problem> {
    let tenant_id = &shopper.tenant.tenant_id;
    let id = command_id(
        headers,
        &format!("{tenant_id}:basket:{basket_id}"),
        shopper
            .idempotency_scope(&state.shoppers, basket_id)
            .as_deref(),
    )?;
    let command = BasketCommand {
        command_id: id.id.clone(),
        tenant_id: tenant_id.clone(),
        basket_id: basket_id.to_owned(),
        issued_at: now_ms(),
        payload,
        customer_id: shopper.customer_id.clone(),
        holds_guest_token: shopper.holds_guest_token(&state.shoppers, basket_id),
    };
    let key = format!("{tenant_id}:{basket_id}");
    let sent = state.commands.send(&key, tenant_id, &id, &command).await?;
    Ok(respond(
        sent,
        &format!("/v1/storefront/baskets/{basket_id}"),
        created,
    ))
}

/// Creates a basket: a customer's when signed in, else a guest basket whose token comes back
/// in the `Basket-Token` header.
#[utoipa::path(post, path = "/v1/storefront/baskets", tag = "baskets",
    request_body = CreateBasketRequest,
    responses((status = 201, description = "The basket"), (status = 422, description = "Unknown channel or segment", body = Problem, content_type = "application/problem+json")))]
pub async fn create_basket(
    State(state): State<AppState>,
    shopper: Shopper,
    headers: HeaderMap,
    JsonBody(request): JsonBody<CreateBasketRequest>,
) -> Result<Response, Problem> {
    let tenant_id = &shopper.tenant.tenant_id;
    // A customer's retry with the same Idempotency-Key must address the same basket (and so
    // the same partition, where the first answer is kept): derive the id from the key and the
    // customer. A guest without a token has no principal to scope a key to: a fresh basket.
    let key = crate::command_api::idempotency_key(&headers)?;
    let basket_id = match (key, &shopper.customer_id) {
        (Some(key), Some(customer)) => {
            let digest = Sha256::digest(format!("{tenant_id}\0basket\0{customer}\0{key}"));
            uuid::Builder::from_random_bytes(digest[..16].try_into().expect("16 bytes"))
                .into_uuid()
                .to_string()
        }
        _ => uuid::Uuid::now_v7().to_string(),
    };
    let payload = BasketCommandPayload::CreateBasket(CreateBasket {
        channel: request.channel,
        customer_id: shopper.customer_id.clone(),
        segment: request.segment.unwrap_or_else(|| "consumer".to_owned()),
    });
    let mut response =
        send_basket_command(&state, &shopper, &headers, &basket_id, payload, true).await?;
    if shopper.customer_id.is_none() && response.status().is_success() {
        let token = state.shoppers.guest_token(tenant_id, &basket_id);
        if let Ok(value) = HeaderValue::from_str(&token) {
            response.headers_mut().insert(BASKET_TOKEN_HEADER, value);
        }
    }
    Ok(response)
}

/// Adds a plan line. With a new number, answers once the number is reserved (or refused).
#[utoipa::path(post, path = "/v1/storefront/baskets/{basket_id}/lines", tag = "baskets",
    request_body = AddLineRequest,
    responses((status = 200, description = "The basket with the line"),
        (status = 409, description = "Number taken, line exists", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Every broken rule", body = Problem, content_type = "application/problem+json")))]
pub async fn add_line(
    State(state): State<AppState>,
    shopper: Shopper,
    Path(basket_id): Path<String>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<AddLineRequest>,
) -> Result<Response, Problem> {
    check_basket_id(&basket_id)?;
    let payload = BasketCommandPayload::AddPlanLine(request.into_command()?);
    send_basket_command(&state, &shopper, &headers, &basket_id, payload, false).await
}

/// Changes a line's SIM type, binding or add-ons.
#[utoipa::path(patch, path = "/v1/storefront/baskets/{basket_id}/lines/{line_id}", tag = "baskets",
    request_body = UpdateLineRequest,
    responses((status = 200, description = "The basket")))]
pub async fn update_line(
    State(state): State<AppState>,
    shopper: Shopper,
    Path((basket_id, line_id)): Path<(String, String)>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<UpdateLineRequest>,
) -> Result<Response, Problem> {
    check_basket_id(&basket_id)?;
    let payload = BasketCommandPayload::UpdateLine(UpdateLine {
        line_id,
        sim_type: request.sim_type,
        binding_months: request.binding_months,
        add_ons: request.add_ons.map(to_add_ons),
    });
    send_basket_command(&state, &shopper, &headers, &basket_id, payload, false).await
}

/// Removes a line; its number is released.
#[utoipa::path(delete, path = "/v1/storefront/baskets/{basket_id}/lines/{line_id}", tag = "baskets",
    responses((status = 200, description = "The basket")))]
pub async fn remove_line(
    State(state): State<AppState>,
    shopper: Shopper,
    Path((basket_id, line_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    check_basket_id(&basket_id)?;
    let payload = BasketCommandPayload::RemoveLine(RemoveLine { line_id });
    send_basket_command(&state, &shopper, &headers, &basket_id, payload, false).await
}

/// Abandons the basket; its numbers are released.
#[utoipa::path(delete, path = "/v1/storefront/baskets/{basket_id}", tag = "baskets",
    responses((status = 200, description = "The abandoned basket")))]
pub async fn abandon_basket(
    State(state): State<AppState>,
    shopper: Shopper,
    Path(basket_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    check_basket_id(&basket_id)?;
    let payload = BasketCommandPayload::AbandonBasket(AbandonBasket {
        reason: Some("shopper".to_owned()),
    });
    send_basket_command(&state, &shopper, &headers, &basket_id, payload, false).await
}

/// The customer's current basket other than `except`, from the view.
async fn current_customer_basket(
    state: &AppState,
    tenant_id: &str,
    customer_id: &str,
    except: &str,
) -> Result<Option<String>, Problem> {
    let mut tx = state.tenant_tx(tenant_id).await?;
    let row = sqlx::query(
        "SELECT basket_id FROM baskets
          WHERE customer_id = $1 AND status = 'ACTIVE' AND basket_id <> $2 AND expires_at > now()
          ORDER BY updated_at DESC LIMIT 1",
    )
    .bind(customer_id)
    .bind(except)
    .fetch_optional(&mut *tx)
    .await
    .map_err(|e| Problem::database(&e))?;
    tx.commit().await.map_err(|e| Problem::database(&e))?;
    Ok(row.map(|r| r.get(0)))
}

/// Signs a guest basket in: needs the customer token and the basket's guest token.
#[utoipa::path(post, path = "/v1/storefront/baskets/{basket_id}/login", tag = "baskets",
    request_body = LoginRequest,
    responses((status = 200, description = "The customer's basket after the login"),
        (status = 401, description = "No customer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not this shopper's basket", body = Problem, content_type = "application/problem+json")))]
pub async fn login(
    State(state): State<AppState>,
    shopper: Shopper,
    Path(basket_id): Path<String>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<LoginRequest>,
) -> Result<Response, Problem> {
    check_basket_id(&basket_id)?;
    let Some(customer_id) = shopper.customer_id.clone() else {
        return Err(Problem::unauthenticated(
            "signing a basket in needs the customer's bearer token",
        ));
    };
    let tenant_id = shopper.tenant.tenant_id.clone();
    let previous = current_customer_basket(&state, &tenant_id, &customer_id, &basket_id).await?;
    match (request.strategy, previous) {
        (LoginStrategy::MergeIntoCustomerBasket, Some(target)) => {
            let payload = BasketCommandPayload::MergeInto(MergeInto {
                target_basket_id: target.clone(),
            });
            let mut response =
                send_basket_command(&state, &shopper, &headers, &basket_id, payload, false).await?;
            // The answer is the customer's basket, which now holds the lines.
            if let Ok(location) = HeaderValue::from_str(&format!("/v1/storefront/baskets/{target}"))
            {
                response.headers_mut().insert("location", location);
            }
            Ok(response)
        }
        (strategy, previous) => {
            let payload = BasketCommandPayload::ClaimBasket(ClaimBasket {
                note: Some(format!("login:{strategy:?}")),
            });
            let response =
                send_basket_command(&state, &shopper, &headers, &basket_id, payload, false).await?;
            if let (LoginStrategy::UseGuestBasket, Some(previous), true) =
                (strategy, previous, response.status().is_success())
            {
                // The customer's older basket gives way; its numbers are released. The
                // customer's own token authorises this, checked by the processor.
                let abandon = BasketCommandPayload::AbandonBasket(AbandonBasket {
                    reason: Some("replaced_on_login".to_owned()),
                });
                let replaced = send_basket_command(
                    &state,
                    &shopper,
                    &HeaderMap::new(),
                    &previous,
                    abandon,
                    false,
                )
                .await?;
                if !replaced.status().is_success() {
                    tracing::warn!(basket = %previous, status = %replaced.status(), "The replaced basket was not abandoned.");
                }
            }
            Ok(response)
        }
    }
}

/// Reads a basket the shopper may see, waiting up to [`READ_YOUR_WRITES_WAIT`] for
/// `min_version`.
async fn read_basket(
    state: &AppState,
    shopper: &Shopper,
    basket_id: &str,
    min_version: Option<i64>,
) -> Result<Basket, Problem> {
    check_basket_id(basket_id)?;
    let deadline = tokio::time::Instant::now() + READ_YOUR_WRITES_WAIT;
    loop {
        let mut tx = state.tenant_tx(&shopper.tenant.tenant_id).await?;
        // No tenant filter on purpose: Row-Level Security scopes the query.
        let row =
            sqlx::query("SELECT document, customer_id, version FROM baskets WHERE basket_id = $1")
                .bind(basket_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| Problem::database(&e))?;
        tx.commit().await.map_err(|e| Problem::database(&e))?;
        let visible = row.filter(|r| {
            let owner: Option<String> = r.get(1);
            match owner {
                Some(owner) => shopper.customer_id.as_deref() == Some(owner.as_str()),
                None => shopper.holds_guest_token(&state.shoppers, basket_id),
            }
        });
        match visible {
            Some(row) if min_version.is_none_or(|v| row.get::<i64, _>(2) >= v) => {
                return serde_json::from_value(row.get(0)).map_err(|e| {
                    tracing::error!(error = %e, basket = basket_id, "A basket view row does not parse.");
                    Problem::internal()
                });
            }
            // The caller may be ahead of the view (read-your-writes), or the basket may not
            // exist or not be theirs: wait only in the first case.
            Some(_) if tokio::time::Instant::now() < deadline => {}
            None if min_version.is_some() && tokio::time::Instant::now() < deadline => {}
            Some(_) => {
                return Err(Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "version_not_yet_visible",
                    "The requested version is not readable yet; retry",
                ));
            }
            None => return Err(basket_not_found(basket_id)),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A basket, with `?min_version=N` to read at least the version a change answered with.
#[utoipa::path(get, path = "/v1/storefront/baskets/{basket_id}", tag = "baskets",
    responses((status = 200, description = "The basket"), (status = 404, description = "Not this shopper's basket", body = Problem, content_type = "application/problem+json")))]
pub async fn get_basket(
    State(state): State<AppState>,
    shopper: Shopper,
    Path(basket_id): Path<String>,
    Query(query): Query<ReadQuery>,
) -> Result<Response, Problem> {
    let basket = read_basket(&state, &shopper, &basket_id, query.min_version).await?;
    Ok(Json(basket).into_response())
}

/// Whether the basket can go to checkout now, with every problem at once.
#[utoipa::path(get, path = "/v1/storefront/baskets/{basket_id}/readiness", tag = "baskets",
    responses((status = 200, description = "`ready` and the list of problems")))]
pub async fn basket_readiness(
    State(state): State<AppState>,
    shopper: Shopper,
    Path(basket_id): Path<String>,
    Query(query): Query<ReadQuery>,
) -> Result<Response, Problem> {
    let basket = read_basket(&state, &shopper, &basket_id, query.min_version).await?;
    let problems = readiness(&basket, now_ms());
    Ok(Json(serde_json::json!({
        "basket_id": basket.basket_id,
        "version": basket.version,
        "ready": problems.is_empty(),
        "problems": problems,
    }))
    .into_response())
}
