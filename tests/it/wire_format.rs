//! Encoding through the registry: the Confluent wire format with the id the registry gave
//! the schema, and decoding back to the same value.

use serde_json::Value;
use tcom_schemas::basket::{BasketCommand, BasketCommandPayload, CreateBasket};
use tcom_schemas::wire::split_wire;
use tcom_schemas::{Codec, Contract};
use tcom_tests::stack;

fn command() -> BasketCommand {
    BasketCommand {
        command_id: "cmd-1".into(),
        tenant_id: "nordlys".into(),
        basket_id: "b-1".into(),
        issued_at: 1_795_305_600_000,
        payload: BasketCommandPayload::CreateBasket(CreateBasket {
            channel: "web".into(),
            customer_id: Some("cust-9".into()),
            segment: "consumer".into(),
        }),
        customer_id: Some("cust-9".into()),
        holds_guest_token: false,
    }
}

#[tokio::test]
async fn values_carry_the_registry_id_of_their_schema_and_decode_back() {
    let stack = stack();
    let codec = Codec::new(&stack.registry_url).unwrap();
    let bytes = codec.encode(&command()).await.unwrap();

    let (id, body) = split_wire(&bytes).unwrap();
    assert_eq!(body, command().to_avro().unwrap().as_slice());

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let registered: Value = http
        .post(format!(
            "{}/subjects/{}",
            stack.registry_url,
            BasketCommand::subject()
        ))
        .json(&serde_json::json!({"schema": BasketCommand::SCHEMA}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        registered["id"].as_u64(),
        Some(u64::from(id)),
        "{registered}"
    );

    let decoded: BasketCommand = codec.decode(&bytes).await.unwrap();
    assert_eq!(decoded, command());
}

#[tokio::test]
async fn bytes_outside_the_wire_format_are_a_permanent_error() {
    let codec = Codec::new(&stack().registry_url).unwrap();
    let not_wire = codec
        .decode::<BasketCommand>(b"{\"json\": true}")
        .await
        .unwrap_err();
    assert!(!not_wire.is_retryable(), "{not_wire}");
    // Valid prefix, but an id no registry has handed out.
    let unknown_id = codec
        .decode::<BasketCommand>(&[0, 0x7f, 0xff, 0xff, 0x00, 2])
        .await
        .unwrap_err();
    assert!(!unknown_id.is_retryable(), "{unknown_id}");
}

#[tokio::test]
async fn all_contracts_register_idempotently() {
    let codec = Codec::new(&stack().registry_url).unwrap();
    let first = codec
        .register_all(&tcom_schemas::contract::all())
        .await
        .unwrap();
    let second = codec
        .register_all(&tcom_schemas::contract::all())
        .await
        .unwrap();
    assert_eq!(first, second);
    assert_eq!(first.len(), tcom_schemas::contract::all().len());
}
