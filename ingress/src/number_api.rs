//! Number pools: brand partners import numbers (each decided by the MSISDN processor, which
//! refuses a number any tenant already has), shoppers search the available ones.
//!
//! Search reads the number view, so a number just taken may still show as available for a
//! moment; reserving it then fails with `number_reserved`, which is the only answer that
//! counts.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::future::join_all;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use tcom_processors::domain::Msisdn;
use tcom_processors::outcome::{Outcome, ReplyMessage};
use tcom_schemas::msisdn::{AddToPool, MsisdnCommand, MsisdnCommandPayload};

use crate::app::AppState;
use crate::auth::{AdminPrincipal, BRAND_ADMIN, CATALOG_MANAGER, CATALOG_READERS};
use crate::basket_api::JsonBody;
use crate::command_api::command_id;
use crate::commands::{Sent, now_ms};
use crate::problem::Problem;
use crate::shoppers::Shopper;
use crate::tenancy::CurrentTenant;

/// At most this many numbers per import request.
pub const MAX_IMPORT: usize = 1000;
/// At most this many search results.
const MAX_RESULTS: i64 = 100;

/// Numbers to add to the tenant's pool.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// E.164, or national numbers of the tenant's country.
    pub numbers: Vec<String>,
}

/// A number that was not imported, and why.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImportRefusal {
    pub number: String,
    pub code: String,
}

/// What became of an import.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct ImportResult {
    /// In the pool now (newly or already).
    pub imported: Vec<String>,
    pub refused: Vec<ImportRefusal>,
    /// Sent, but not answered in time: they will be decided; check the pool listing.
    pub pending: Vec<String>,
}

/// Imports numbers into the tenant's pool; each is unique across all tenants.
#[utoipa::path(post, path = "/v1/admin/number-pool", tag = "admin",
    request_body = ImportRequest,
    responses((status = 200, description = "Per number: imported, refused or pending", body = ImportResult),
        (status = 422, description = "Too many numbers", body = Problem, content_type = "application/problem+json")))]
pub async fn import_numbers(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    principal: AdminPrincipal,
    headers: HeaderMap,
    JsonBody(request): JsonBody<ImportRequest>,
) -> Result<Response, Problem> {
    principal.require_tenant_role(&tenant, &[BRAND_ADMIN, CATALOG_MANAGER])?;
    if request.numbers.is_empty() || request.numbers.len() > MAX_IMPORT {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_import",
            "An import has 1 to 1000 numbers",
        ));
    }
    let mut result = ImportResult::default();
    let mut valid = Vec::new();
    for text in request.numbers {
        match Msisdn::parse_in_country(&text, &tenant.settings.country) {
            Ok(m) => valid.push(m.as_str().to_owned()),
            Err(_) => result.refused.push(ImportRefusal {
                number: text,
                code: "invalid_msisdn".to_owned(),
            }),
        }
    }
    valid.sort();
    valid.dedup();
    let import = command_id(
        &headers,
        &format!("{}:pool", tenant.tenant_id),
        Some(&principal.idempotency_scope()),
    )?;
    let import_id = import.id.clone();
    let sends = valid.iter().map(|msisdn| {
        let id = crate::command_api::CommandId {
            id: format!("{import_id}:{msisdn}"),
            fingerprint: import.fingerprint.clone(),
        };
        let command = MsisdnCommand {
            command_id: id.id.clone(),
            msisdn: msisdn.clone(),
            tenant_id: tenant.tenant_id.clone(),
            issued_at: now_ms(),
            payload: MsisdnCommandPayload::AddToPool(AddToPool {
                import_id: Some(import_id.clone()),
            }),
        };
        let state = &state;
        let tenant_id = tenant.tenant_id.clone();
        async move {
            // Keyed by the number alone: every tenant's claim on it meets on one partition.
            let sent = state.commands.send(msisdn, &tenant_id, &id, &command).await;
            (msisdn.clone(), sent)
        }
    });
    for (msisdn, sent) in join_all(sends).await {
        match sent? {
            Sent::Replied(ReplyMessage {
                outcome: Some(Outcome::Accepted { .. }),
                ..
            }) => result.imported.push(msisdn),
            Sent::Replied(ReplyMessage {
                outcome: Some(Outcome::Rejected { code, .. }),
                ..
            }) => result.refused.push(ImportRefusal {
                number: msisdn,
                code,
            }),
            Sent::Replied(_) => result.refused.push(ImportRefusal {
                number: msisdn,
                code: "command_failed".to_owned(),
            }),
            Sent::Pending => result.pending.push(msisdn),
        }
    }
    Ok(Json(result).into_response())
}

/// Filters of a pool listing.
#[derive(Debug, Deserialize)]
pub struct PoolQuery {
    /// `AVAILABLE`, `RESERVED` or `ASSIGNED`.
    #[serde(default)]
    pub status: Option<String>,
}

/// The tenant's pool (at most 1000 numbers, in number order).
#[utoipa::path(get, path = "/v1/admin/number-pool", tag = "admin",
    responses((status = 200, description = "The numbers")))]
pub async fn list_pool(
    State(state): State<AppState>,
    CurrentTenant(tenant): CurrentTenant,
    principal: AdminPrincipal,
    Query(query): Query<PoolQuery>,
) -> Result<Response, Problem> {
    principal.require_tenant_role(&tenant, CATALOG_READERS)?;
    let mut tx = state.tenant_tx(&tenant.tenant_id).await?;
    let rows = sqlx::query(
        "SELECT jsonb_build_object('msisdn', msisdn, 'status', status, 'basket_id', basket_id,
                'reserved_until', reserved_until, 'order_id', order_id, 'version', version)
           FROM phone_numbers WHERE ($1::text IS NULL OR status = $1) ORDER BY msisdn LIMIT 1000",
    )
    .bind(query.status)
    .fetch_all(&mut *tx)
    .await
    .map_err(|e| Problem::database(&e))?;
    tx.commit().await.map_err(|e| Problem::database(&e))?;
    let items: Vec<serde_json::Value> = rows.iter().map(|r| r.get(0)).collect();
    Ok(Json(serde_json::json!({ "items": items })).into_response())
}

/// How a shopper looks for a number: one of `prefix`, `pattern` or `random`.
#[derive(Debug, Deserialize)]
pub struct SearchQuery {
    /// Numbers starting with this (E.164 digits, `+` optional).
    #[serde(default)]
    pub prefix: Option<String>,
    /// Digits with `?` for any one digit and `*` for any digits, e.g. `*1234` or `+4520??00*`.
    #[serde(default)]
    pub pattern: Option<String>,
    /// A random pick of this many.
    #[serde(default)]
    pub random: Option<i64>,
    #[serde(default)]
    pub limit: Option<i64>,
}

fn invalid_search(detail: &str) -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_search",
        "The number search is malformed",
    )
    .with_detail(detail.to_owned())
}

/// The SQL `LIKE` pattern of a search (digits only, so nothing needs escaping).
fn like_pattern(query: &SearchQuery) -> Result<(String, bool, i64), Problem> {
    let limit = query.limit.unwrap_or(20);
    if !(1..=MAX_RESULTS).contains(&limit) {
        return Err(invalid_search("limit is 1 to 100"));
    }
    let digits_plus = |s: &str, extra: &[char]| {
        s.strip_prefix('+')
            .unwrap_or(s)
            .chars()
            .all(|c| c.is_ascii_digit() || extra.contains(&c))
    };
    match (&query.prefix, &query.pattern, query.random) {
        (Some(prefix), None, None) => {
            if prefix.is_empty() || prefix.len() > 16 || !digits_plus(prefix, &[]) {
                return Err(invalid_search(
                    "a prefix is up to 15 digits, optionally after '+'",
                ));
            }
            let digits = prefix.strip_prefix('+').unwrap_or(prefix);
            Ok((format!("+{digits}%"), false, limit))
        }
        (None, Some(pattern), None) => {
            if pattern.is_empty() || pattern.len() > 32 || !digits_plus(pattern, &['?', '*']) {
                return Err(invalid_search(
                    "a pattern has digits, '?' for any digit and '*' for any digits",
                ));
            }
            let body: String = pattern
                .strip_prefix('+')
                .unwrap_or(pattern)
                .chars()
                .map(|c| match c {
                    '?' => '_',
                    '*' => '%',
                    c => c,
                })
                .collect();
            // Without a leading '+', a pattern may match anywhere after it.
            let like = if pattern.starts_with('+') {
                format!("+{body}")
            } else {
                format!("+%{body}")
            };
            Ok((like, false, limit))
        }
        (None, None, Some(n)) => {
            if !(1..=MAX_RESULTS).contains(&n) {
                return Err(invalid_search("random is 1 to 100"));
            }
            Ok(("+%".to_owned(), true, n))
        }
        (None, None, None) => Ok(("+%".to_owned(), false, limit)),
        _ => Err(invalid_search("use one of prefix, pattern or random")),
    }
}

/// Available numbers of the shop.
#[utoipa::path(get, path = "/v1/storefront/numbers", tag = "baskets",
    responses((status = 200, description = "Available numbers"), (status = 422, description = "Malformed search", body = Problem, content_type = "application/problem+json")))]
pub async fn search_numbers(
    State(state): State<AppState>,
    shopper: Shopper,
    Query(query): Query<SearchQuery>,
) -> Result<Response, Problem> {
    let (like, random, limit) = like_pattern(&query)?;
    let mut tx = state.tenant_tx(&shopper.tenant.tenant_id).await?;
    let sql = if random {
        "SELECT msisdn FROM phone_numbers WHERE status = 'AVAILABLE' AND msisdn LIKE $1
          ORDER BY random() LIMIT $2"
    } else {
        "SELECT msisdn FROM phone_numbers WHERE status = 'AVAILABLE' AND msisdn LIKE $1
          ORDER BY msisdn LIMIT $2"
    };
    let rows = sqlx::query(sql)
        .bind(&like)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| Problem::database(&e))?;
    tx.commit().await.map_err(|e| Problem::database(&e))?;
    let numbers: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    Ok(Json(serde_json::json!({ "numbers": numbers })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(prefix: Option<&str>, pattern: Option<&str>, random: Option<i64>) -> SearchQuery {
        SearchQuery {
            prefix: prefix.map(str::to_owned),
            pattern: pattern.map(str::to_owned),
            random,
            limit: None,
        }
    }

    #[test]
    fn searches_become_like_patterns_of_digits_only() {
        assert_eq!(
            like_pattern(&query(Some("+4520"), None, None)).unwrap().0,
            "+4520%"
        );
        assert_eq!(
            like_pattern(&query(Some("4520"), None, None)).unwrap().0,
            "+4520%"
        );
        assert_eq!(
            like_pattern(&query(None, Some("*1234"), None)).unwrap().0,
            "+%%1234"
        );
        assert_eq!(
            like_pattern(&query(None, Some("+4520??00*"), None))
                .unwrap()
                .0,
            "+4520__00%"
        );
        assert!(like_pattern(&query(None, None, Some(5))).unwrap().1);
        for bad in [
            query(Some("45%"), None, None),
            query(None, Some("12_3"), None),
            query(Some("45"), Some("1"), None),
            query(None, None, Some(0)),
        ] {
            assert_eq!(like_pattern(&bad).unwrap_err().code, "invalid_search");
        }
    }
}
