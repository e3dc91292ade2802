//! The storefront catalog: what the tenant serving this host sells in a channel, with
//! marketing content in the shopper's locale and current prices from the promotion engine.
//!
//! Reads come from the RLS-protected views in one transaction scoped to the tenant; prices
//! are computed per request from the offering's list (or channel) price and the campaigns
//! running now, for every binding term the offering offers.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use tcom_processors::domain::catalog_rules::{campaign_concerns, list_price, pricing_campaign};
use tcom_processors::domain::pricing::{
    self, PricingContext, quote, standard_vat_basis_points, vat_share,
};
use tcom_schemas::campaign::CampaignDefinition;
use tcom_schemas::catalog::{OfferingDefinition, OfferingKind, SimType};

use crate::app::AppState;
use crate::commands::now_ms;
use crate::problem::Problem;
use crate::tenancy::CurrentTenant;

/// Query of `GET /v1/storefront/catalog`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct CatalogQuery {
    /// Sales channel; default `web`.
    pub channel: Option<String>,
    /// Customer segment; default `consumer`.
    pub segment: Option<String>,
    /// Locale for marketing content; default the tenant's.
    pub locale: Option<String>,
}

/// One price phase: `months` is absent for the last, open-ended phase.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PricePhase {
    pub months: Option<u32>,
    pub monthly_minor: i64,
}

/// One explained step of the price waterfall.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PriceStep {
    pub campaign_id: String,
    pub description: String,
}

/// The price for one binding choice.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PriceOption {
    pub binding_months: u32,
    pub one_time_minor: i64,
    pub phases: Vec<PricePhase>,
    /// e.g. "149.50 per month for 6 months, then 299.00".
    pub summary: String,
    /// VAT included in the first month's price, when the country's rate is known.
    pub monthly_vat_minor: Option<i64>,
    pub steps: Vec<PriceStep>,
}

/// One offering as the storefront shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CatalogEntry {
    pub offering_id: String,
    #[schema(value_type = String)]
    pub kind: OfferingKind,
    pub name: String,
    pub description: Option<String>,
    /// Localised fields from the content system, when there are any.
    #[schema(value_type = Object)]
    pub content: Option<serde_json::Value>,
    #[schema(value_type = Vec<String>)]
    pub sim_types: Vec<SimType>,
    #[schema(value_type = Vec<Object>)]
    pub add_ons: Vec<tcom_schemas::catalog::AddOnRelation>,
    pub list_one_time_minor: i64,
    pub list_monthly_minor: i64,
    pub prices: Vec<PriceOption>,
}

/// The catalog of one tenant and channel.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Catalog {
    pub tenant_id: String,
    pub channel: String,
    pub segment: String,
    pub locale: String,
    pub currency: String,
    pub offerings: Vec<CatalogEntry>,
}

const OFFERINGS_SQL: &str = "
    SELECT o.offering_id, o.definition, p.display_name, p.description, p.monthly_price_minor,
           (SELECT oc.fields FROM offering_content oc
             WHERE oc.tenant_id = o.tenant_id AND oc.offering_id = o.offering_id
               AND oc.locale IN ($2, $3)
             ORDER BY (oc.locale = $2) DESC, oc.updated_at DESC LIMIT 1) AS content
      FROM offering_placements p
      JOIN offerings o ON o.tenant_id = p.tenant_id AND o.offering_id = p.offering_id
     WHERE p.channel = $1 AND p.visible AND o.lifecycle_status = 'ACTIVE'
     ORDER BY p.sort_order, o.offering_id";

const CAMPAIGNS_SQL: &str = "
    SELECT campaign_id, definition FROM campaigns
     WHERE status = 'ACTIVE' AND valid_from <= now() AND (valid_until IS NULL OR valid_until > now())";

/// Computed catalogs by (tenant, channel, segment, locale), kept for [`CACHE_TTL`]: a popular
/// storefront is read far more often than its catalog changes, and a brand partner's change
/// shows within the TTL. The key always starts with the tenant, so no entry can answer
/// another tenant.
#[derive(Debug, Default)]
pub struct CatalogCache {
    entries: std::sync::Mutex<
        std::collections::HashMap<Selection, (std::time::Instant, axum::body::Bytes)>,
    >,
}

/// What a catalog request asks for, defaults filled in; also the cache key, tenant first.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Selection {
    tenant_id: String,
    channel: String,
    segment: String,
    locale: String,
}

/// How long a computed catalog is served before it is computed again.
pub const CACHE_TTL: std::time::Duration = std::time::Duration::from_millis(1000);

impl CatalogCache {
    fn get(&self, key: &Selection) -> Option<axum::body::Bytes> {
        let entries = self.entries.lock().expect("catalog cache lock");
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < CACHE_TTL)
            .map(|(_, body)| body.clone())
    }

    fn put(&self, key: Selection, body: axum::body::Bytes) {
        let mut entries = self.entries.lock().expect("catalog cache lock");
        // Bounded: drop expired entries when it grows.
        if entries.len() > 10_000 {
            entries.retain(|_, (at, _)| at.elapsed() < CACHE_TTL);
        }
        entries.insert(key, (std::time::Instant::now(), body));
    }
}

/// The catalog for the tenant of this host (JSON; see [`Catalog`]).
#[utoipa::path(get, path = "/v1/storefront/catalog", tag = "storefront",
    params(CatalogQuery),
    responses(
        (status = 200, description = "Offerings on sale in the channel, with prices", body = Catalog),
        (status = 422, description = "Unknown channel or segment", body = Problem, content_type = "application/problem+json")
    ))]
pub async fn catalog(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    Query(query): Query<CatalogQuery>,
) -> Result<axum::response::Response, Problem> {
    use axum::response::IntoResponse;
    let selection = Selection {
        tenant_id: tenant.tenant_id.clone(),
        channel: query.channel.unwrap_or_else(|| "web".to_owned()),
        segment: query.segment.unwrap_or_else(|| "consumer".to_owned()),
        locale: query
            .locale
            .unwrap_or_else(|| tenant.settings.default_locale.clone()),
    };
    let body = match state.catalog_cache.get(&selection) {
        Some(body) => body,
        None => {
            let catalog = compute(&state, &tenant, &selection).await?;
            let body =
                axum::body::Bytes::from(serde_json::to_vec(&catalog).expect("catalog serializes"));
            state.catalog_cache.put(selection, body.clone());
            body
        }
    };
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

async fn compute(
    state: &AppState,
    tenant: &tcom_schemas::tenant::Tenant,
    selection: &Selection,
) -> Result<Catalog, Problem> {
    let settings = &tenant.settings;
    let Selection {
        channel,
        segment,
        locale,
        ..
    } = selection.clone();
    if !settings.channels.contains(&channel) {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_channel",
            "Unknown channel",
        )
        .with_detail(format!(
            "this brand sells through {}",
            settings.channels.join(", ")
        )));
    }
    if !settings.segments.iter().any(|s| s.name == segment) {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_segment",
            "Unknown segment",
        )
        .with_detail("the segment is not one of this brand's"));
    }

    let mut tx = state.tenant_tx(&tenant.tenant_id).await?;
    let rows = sqlx::query(OFFERINGS_SQL)
        .bind(&channel)
        .bind(&locale)
        .bind(&settings.default_locale)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| Problem::database(&e))?;
    let campaign_rows = sqlx::query(CAMPAIGNS_SQL)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| Problem::database(&e))?;
    tx.commit().await.map_err(|e| Problem::database(&e))?;

    let campaigns: Vec<(Vec<String>, pricing::Campaign)> = campaign_rows
        .iter()
        .filter_map(|row| {
            let id: String = row.get(0);
            let definition: CampaignDefinition = serde_json::from_value(row.get(1)).ok()?;
            Some((
                definition.offering_ids.clone(),
                pricing_campaign(&id, &definition),
            ))
        })
        .collect();
    let vat_rate = standard_vat_basis_points(&settings.country);
    let now = now_ms();

    let mut offerings = Vec::with_capacity(rows.len());
    for row in &rows {
        let offering_id: String = row.get(0);
        let Ok(definition) = serde_json::from_value::<OfferingDefinition>(row.get(1)) else {
            tracing::error!(offering = %offering_id, "Offering view row does not parse; skipped.");
            continue;
        };
        if !definition.eligible_segments.is_empty()
            && !definition.eligible_segments.contains(&segment)
        {
            continue;
        }
        // The view's placement price and the definition's agree; the definition is the source.
        let list = list_price(&definition, &channel);
        let applicable: Vec<pricing::Campaign> = campaigns
            .iter()
            .filter(|(targets, _)| campaign_concerns(targets, &offering_id, definition.kind))
            .map(|(_, c)| c.clone())
            .collect();
        let bindings: Vec<u32> = if definition.binding_months.is_empty() {
            vec![0]
        } else {
            definition
                .binding_months
                .iter()
                .map(|m| (*m).max(0) as u32)
                .collect()
        };
        let prices = bindings
            .into_iter()
            .map(|binding_months| {
                let ctx = PricingContext {
                    channel: channel.clone(),
                    segment: segment.clone(),
                    now,
                    binding_months,
                };
                let q = quote(list, &applicable, &ctx);
                PriceOption {
                    binding_months,
                    one_time_minor: q.one_time,
                    summary: q.describe_recurring(),
                    monthly_vat_minor: vat_rate
                        .zip(q.phases.first())
                        .map(|(rate, p)| vat_share(p.monthly, rate)),
                    phases: q
                        .phases
                        .iter()
                        .map(|p| PricePhase {
                            months: p.months,
                            monthly_minor: p.monthly,
                        })
                        .collect(),
                    steps: q
                        .steps
                        .into_iter()
                        .map(|s| PriceStep {
                            campaign_id: s.campaign,
                            description: s.description,
                        })
                        .collect(),
                }
            })
            .collect();
        let display_name: Option<String> = row.get(2);
        let placement_description: Option<String> = row.get(3);
        offerings.push(CatalogEntry {
            offering_id,
            kind: definition.kind,
            name: display_name.unwrap_or_else(|| definition.name.clone()),
            description: placement_description.or_else(|| definition.description.clone()),
            content: row.get(5),
            sim_types: definition.sim_types.clone(),
            add_ons: definition.add_ons.clone(),
            list_one_time_minor: list.one_time,
            list_monthly_minor: list.monthly,
            prices,
        });
    }
    Ok(Catalog {
        tenant_id: tenant.tenant_id.clone(),
        channel,
        segment,
        locale,
        currency: settings.currency.clone(),
        offerings,
    })
}
