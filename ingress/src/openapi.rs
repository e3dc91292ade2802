//! The OpenAPI document, generated from the handlers' annotations and served at `/openapi.json`.

use utoipa::OpenApi;

/// The ingress API description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "tcom ingress",
        description = "White-label telecom commerce: storefront and admin HTTP API. The tenant is resolved from the Host header; every error is application/problem+json with a stable `code`."
    ),
    paths(
        crate::health::healthz,
        crate::health::readyz,
        crate::storefront::current_tenant,
        crate::catalog_read::catalog,
        crate::platform::onboard,
        crate::platform::update_settings,
        crate::platform::suspend,
        crate::platform::get_tenant,
        crate::admin::put_offering,
        crate::admin::activate_offering,
        crate::admin::retire_offering,
        crate::admin::list_offerings,
        crate::admin::put_campaign,
        crate::admin::end_campaign,
        crate::admin::list_campaigns,
        crate::content_webhook::receive
    ),
    components(schemas(
        crate::problem::Problem,
        crate::health::Readiness,
        crate::storefront::StorefrontTenant,
        crate::catalog_read::Catalog,
        crate::platform::OnboardRequest,
        crate::platform::SuspendRequest
    )),
    tags(
        (name = "operations", description = "Liveness and readiness"),
        (name = "storefront", description = "What shoppers' storefronts call"),
        (name = "platform", description = "Platform operators: tenant onboarding (role platform_operator)"),
        (name = "webhooks", description = "Signed callbacks from outside systems"),
        (name = "admin", description = "Brand partners: their catalog and campaigns (token of the host's tenant)")
    )
)]
#[derive(Debug)]
pub struct ApiDoc;
