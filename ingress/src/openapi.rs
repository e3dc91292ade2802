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
        crate::esim_api::activation_qr_png,
        crate::esim_api::activation_qr_svg,
        crate::esim_api::activation_code_text,
        crate::esim_api::confirmation_code,
        crate::product_api::my_subscriptions,
        crate::product_api::brand_subscriptions,
        crate::order_api::brand_orders,
        crate::order_api::brand_order,
        crate::payment_webhooks::stripe_webhook,
        crate::payment_webhooks::adyen_webhook,
        crate::provider_webhooks::receive,
        crate::provider_webhooks::receive_carrier,
        crate::order_api::correct_port_in,
        crate::identity::sign_in_api::jwks,
        crate::identity::sign_in_api::start_sign_in,
        crate::identity::sign_in_api::finish_sign_in,
        crate::identity::sign_in_api::sign_out,
        crate::identity::owner_api::verify_owner,
        crate::identity::customer_data_api::export_my_data,
        crate::identity::customer_data_api::erase_me,
        crate::identity::customer_data_api::admin_export,
        crate::identity::customer_data_api::admin_erase,
        crate::identity::customer_data_api::audit_log,
        crate::identity::staff::start_staff_sign_in,
        crate::identity::staff::finish_staff_sign_in,
        crate::identity::staff::staff_sign_out,
        crate::identity::staff::grant_roles,
        crate::identity::staff::list_staff,
        crate::identity::staff::start_operator_sign_in,
        crate::identity::staff::finish_operator_sign_in
    ),
    components(schemas(
        crate::esim_api::ActivationCodeText,
        crate::esim_api::ConfirmationCode,
        crate::product_api::ProductList,
        crate::product_api::Product,
        crate::problem::Problem,
        crate::health::Readiness,
        crate::storefront::StorefrontTenant,
        crate::catalog_read::Catalog,
        crate::platform::OnboardRequest,
        crate::platform::SuspendRequest,
        crate::order_api::CheckoutRequest,
        crate::order_api::CancelRequest,
        crate::order_schema::ProductOrder,
        crate::order_schema::OrderList,
        crate::order_schema::OrderOwner,
        crate::identity::sign_in_api::SignInRequest,
        crate::identity::sign_in_api::SignInStarted,
        crate::identity::sign_in_api::SignInCallback,
        crate::identity::sign_in_api::JwkSetDocument,
        crate::identity::sessions::IssuedSession,
        crate::identity::owner_api::OwnerVerificationRequest,
        crate::identity::customer_data_api::CustomerDataExport,
        crate::identity::customer_data_api::OwnerIdentityExport,
        crate::identity::customer_data_api::ContactExport,
        crate::identity::customer_data_api::AuditLog,
        crate::identity::customer_data_api::AuditEntry,
        crate::identity::staff::IssuedStaffSession,
        crate::identity::staff::GrantRequest,
        crate::identity::staff::StaffMember,
        crate::identity::staff::StaffList
    )),
    modifiers(&SecuritySchemes),
    tags(
        (name = "operations", description = "Liveness and readiness"),
        (name = "storefront", description = "What shoppers' storefronts call"),
        (name = "orders", description = "Checkout and the customer's orders (TMF622 product orders; customer token)"),
        (name = "subscriptions", description = "The customer's subscriptions (TMF637 products; customer token)"),
        (name = "baskets", description = "Shoppers' baskets and phone numbers (guest Basket-Token or customer token)"),
        (name = "platform", description = "Platform operators: tenant onboarding (role platform_operator)"),
        (name = "webhooks", description = "Signed callbacks from outside systems"),
        (name = "identity", description = "Customer sign-in through the shop's OpenID Connect broker (MitID in Denmark), owner verification, and the customer's personal data (export, erasure)"),
        (name = "admin", description = "Brand partners: their catalog and campaigns (token of the host's tenant)")
    )
)]
#[derive(Debug)]
pub struct ApiDoc;

/// The API's credentials: the platform's customer session tokens (ES256, per tenant, from
/// `/v1/storefront/sign-in/callback`) and staff tokens.
#[derive(Debug)]
struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "customer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A customer session token of the host's tenant (ES256, keys at /.well-known/jwks.json)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "admin",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A staff token naming the host's tenant and roles (platform operators: no tenant)",
                    ))
                    .build(),
            ),
        );
    }
}
