//! The OpenAPI document, generated from the handlers' annotations and served at `/openapi.json`.

use utoipa::OpenApi;

/// The ingress API description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "tcom ingress",
        description = "White-label telecom commerce: storefront and admin HTTP API. The tenant is resolved from the Host header; every error is application/problem+json with a stable `code`."
    ),
    paths(crate::health::healthz, crate::health::readyz, crate::storefront::current_tenant),
    components(schemas(crate::problem::Problem, crate::health::Readiness, crate::storefront::StorefrontTenant)),
    tags(
        (name = "operations", description = "Liveness and readiness"),
        (name = "storefront", description = "What shoppers' storefronts call")
    )
)]
#[derive(Debug)]
pub struct ApiDoc;
