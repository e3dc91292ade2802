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
        crate::number_api::search_numbers,
        crate::basket_api::create_basket,
        crate::basket_api::get_basket,
        crate::basket_api::abandon_basket,
        crate::basket_api::add_line,
        crate::basket_api::update_line,
        crate::basket_api::remove_line,
        crate::basket_api::login,
        crate::basket_api::basket_readiness,
        crate::number_api::import_numbers,
        crate::number_api::list_pool,
        crate::platform::onboard,
        crate::platform::update_settings,
        crate::platform::suspend,
        crate::platform::get_tenant,
        crate::admin::get_offering,
        crate::admin::put_offering,
        crate::admin::activate_offering,
        crate::admin::retire_offering,
        crate::admin::list_offerings,
        crate::admin::get_campaign,
        crate::admin::put_campaign,
        crate::admin::end_campaign,
        crate::admin::list_campaigns,
        crate::content_webhook::receive,
        crate::order_api::checkout,
        crate::order_api::my_orders,
        crate::order_api::my_order,
        crate::order_api::cancel_order,
        crate::order_api::brand_orders,
        crate::order_api::brand_order,
        crate::payment_webhooks::stripe_webhook,
        crate::payment_webhooks::adyen_webhook
    ),
    components(schemas(
        crate::problem::Problem,
        crate::health::Readiness,
        crate::storefront::StorefrontTenant,
        crate::catalog_read::Catalog,
        crate::platform::OnboardRequest,
        crate::platform::SuspendRequest,
        crate::order_api::CheckoutRequest,
        crate::order_api::CancelRequest,
        crate::order_schema::ProductOrder,
        crate::order_schema::OrderList
    )),
    tags(
        (name = "operations", description = "Liveness and readiness"),
        (name = "storefront", description = "What shoppers' storefronts call"),
        (name = "orders", description = "Checkout and the customer's orders (TMF622 product orders; customer token)"),
        (name = "baskets", description = "Shoppers' baskets and phone numbers (guest Basket-Token or customer token)"),
        (name = "platform", description = "Platform operators: tenant onboarding (role platform_operator)"),
        (name = "webhooks", description = "Signed callbacks from outside systems"),
        (name = "admin", description = "Brand partners: their catalog and campaigns (token of the host's tenant)")
    )
)]
#[derive(Debug)]
pub struct ApiDoc;
