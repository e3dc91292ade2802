//! The ingress: the platform's HTTP edge (axum).
//!
//! It resolves the tenant from the `Host` header, validates requests, publishes commands to
//! Kafka and waits for their outcome, and serves reads from the PostgreSQL views. Errors are
//! `application/problem+json` with a stable `code`; the OpenAPI document is at
//! `/openapi.json`. Run it with `tcom run --roles ingress` (or `scripts/run-local`).

pub mod admin;
pub mod app;
pub mod auth;
pub mod basket_api;
pub mod catalog_read;
pub mod command_api;
pub mod commands;
pub mod content_webhook;
pub mod database_role;
pub mod esim_api;
pub mod health;
pub mod identity;
pub mod number_api;
pub mod openapi;
pub mod order_api;
pub mod order_schema;
pub mod payment_webhooks;
pub mod platform;
pub mod problem;
pub mod product_api;
pub mod provider_webhooks;
pub mod replies;
pub mod settings;
pub mod shoppers;
pub mod storefront;
pub mod tenancy;
pub mod write_requests;

pub use app::{AppState, Application, router};
pub use settings::Settings;
