//! End-to-end tests on the real stack: Apache Kafka, PostgreSQL, Redis and the schema
//! registry, started by `scripts/test`. One test binary, modules by concern.

mod baskets;
mod catalog_admin;
mod checkout;
#[path = "../support/checkout_shop.rs"]
mod checkout_shop;
mod content_sync;
mod fail_loudly;
mod fulfilment;
mod identity;
mod ingress;
mod jose_oracle;
mod kafka_transactions;
mod porting;
mod prerequisites;
mod registry_contract;
mod registry_persistence;
mod runtime_eos;
mod runtime_features;
mod staff_identity;
mod tcm_connector;
mod tcm_reconcile;
mod tenant_view;
mod view_failures;
mod wire_format;
