//! Every contract type round-trips through its committed schema, and every schema stays
//! backward compatible with the versions released before it.

use std::path::PathBuf;
use std::process::Command;

use apache_avro::Schema;
use tcom_registry::compat::{CompatibilityLevel, check};
use tcom_schemas::Contract;
use tcom_schemas::basket::*;
use tcom_schemas::campaign::*;
use tcom_schemas::catalog::*;
use tcom_schemas::contract::all;
use tcom_schemas::msisdn::*;
use tcom_schemas::order::*;
use tcom_schemas::payment::*;
use tcom_schemas::tenant::*;

fn round_trip<T: Contract + PartialEq + std::fmt::Debug>(value: T) {
    let bytes = value.to_avro().unwrap_or_else(|e| panic!("{e}"));
    let back = T::from_avro(&bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back, value);
}

fn settings() -> TenantSettings {
    TenantSettings {
        theme: [("primary_color".to_string(), "#000".to_string())].into(),
        content: Some(ContentSettings {
            space_id: "sp1".into(),
            environment: "master".into(),
            access_token_ref: "vault://cf/t1".into(),
        }),
        identity: Some(IdentitySettings {
            issuer: "https://broker.example/realms/t1".into(),
            client_id: "t1-shop".into(),
            client_secret_ref: "file://oidc/t1".into(),
            scopes: vec!["openid".into(), "mitid".into()],
            cpr_matching: true,
            owner_verification: Some(OwnerVerificationPolicy {
                min_assurance: "substantial".into(),
                min_age: 18,
                on_failure: "hold".into(),
                timeout_seconds: 900,
            }),
        }),
        ..tcom_schemas::fixtures::danish_settings(&["nordlys.example"])
    }
}

#[test]
fn tenant_contracts_round_trip() {
    round_trip(Tenant {
        tenant_id: "t1".into(),
        status: TenantStatus::Suspended,
        settings: settings(),
        version: 3,
        updated_at: 1_700_000_000_000,
    });
    for payload in [
        TenantCommandPayload::OnboardTenant(OnboardTenant {
            settings: settings(),
        }),
        TenantCommandPayload::UpdateTenantSettings(UpdateTenantSettings {
            settings: TenantSettings {
                payment: None,
                content: None,
                ..settings()
            },
        }),
        TenantCommandPayload::SuspendTenant(SuspendTenant {
            reason: "unpaid".into(),
        }),
    ] {
        round_trip(TenantCommand {
            command_id: "c1".into(),
            tenant_id: "t1".into(),
            issued_at: 1,
            payload,
        });
    }
}

fn definition() -> OfferingDefinition {
    OfferingDefinition {
        name: "Unlimited 5G".into(),
        description: Some("All you can eat".into()),
        specification_id: "spec-5g".into(),
        prices: vec![
            OfferingPrice {
                name: "activation".into(),
                price_type: PriceType::OneTime,
                amount_minor: 9_900,
                currency: "DKK".into(),
                recurring_period_months: None,
            },
            OfferingPrice {
                name: "monthly".into(),
                price_type: PriceType::Recurring,
                amount_minor: 19_900,
                currency: "DKK".into(),
                recurring_period_months: Some(1),
            },
        ],
        binding_months: vec![0, 6],
        sim_types: vec![SimType::Psim, SimType::Esim],
        add_ons: vec![AddOnRelation {
            offering_id: "datacard".into(),
            min: 0,
            max: 4,
        }],
        kind: OfferingKind::Plan,
        eligible_segments: vec!["consumer".into()],
        placements: vec![ChannelPlacement {
            channel: "web".into(),
            visible: true,
            display_name: Some("Unlimited".into()),
            description: None,
            sort_order: 2,
            monthly_price_minor: Some(17_900),
        }],
    }
}

fn campaign_definition() -> CampaignDefinition {
    CampaignDefinition {
        name: "Half price".into(),
        priority: 10,
        valid_from: 1,
        valid_until: Some(2),
        channels: vec!["web".into()],
        segments: vec![],
        offering_ids: vec!["o1".into()],
        requires_binding_months: Some(6),
        forbidden_binding_months: vec![0],
        alterations: vec![PriceAlteration {
            target: AlterationTarget::Recurring,
            change: ChangeKind::PercentOff,
            value: 5_000,
            duration_months: Some(6),
        }],
        stop_after: true,
        group: Some(CampaignGroup {
            name: "welcome".into(),
            kind: GroupKind::BestDeal,
        }),
    }
}

#[test]
fn campaign_contracts_round_trip() {
    round_trip(Campaign {
        tenant_id: "t1".into(),
        campaign_id: "c1".into(),
        status: CampaignStatus::Ended,
        definition: campaign_definition(),
        version: 3,
        updated_at: 4,
    });
    for payload in [
        CampaignCommandPayload::UpsertCampaign(UpsertCampaign {
            definition: campaign_definition(),
        }),
        CampaignCommandPayload::EndCampaign(EndCampaign { reason: None }),
    ] {
        round_trip(CampaignCommand {
            command_id: "c".into(),
            tenant_id: "t1".into(),
            campaign_id: "c1".into(),
            issued_at: 9,
            payload,
        });
    }
}

#[test]
fn catalog_contracts_round_trip() {
    round_trip(ProductOffering {
        tenant_id: "t1".into(),
        offering_id: "o1".into(),
        lifecycle_status: LifecycleStatus::Active,
        definition: definition(),
        version: 2,
        updated_at: 5,
    });
    for payload in [
        CatalogCommandPayload::UpsertOffering(UpsertOffering {
            definition: definition(),
        }),
        CatalogCommandPayload::ActivateOffering(ActivateOffering { note: None }),
        CatalogCommandPayload::RetireOffering(RetireOffering {
            reason: Some("old".into()),
        }),
    ] {
        round_trip(CatalogCommand {
            command_id: "c".into(),
            tenant_id: "t1".into(),
            offering_id: "o1".into(),
            issued_at: 9,
            payload,
        });
    }
}

#[test]
fn basket_contracts_round_trip() {
    let port_in = NumberChoice::PortIn(PortIn {
        msisdn: "+4520123456".into(),
        current_operator: "TDC".into(),
        sim_icc: Some("8945000000000000001".into()),
        desired_port_date: Some(20_500),
        pac: Some("ABC123456".into()),
    });
    let new_number = NumberChoice::NewNumber(NewNumber {
        msisdn: "+4520999999".into(),
    });
    let commands = [
        BasketCommandPayload::CreateBasket(CreateBasket {
            channel: "web".into(),
            customer_id: None,
            segment: "business".into(),
        }),
        BasketCommandPayload::AddPlanLine(AddPlanLine {
            line_id: "l1".into(),
            offering_id: "o1".into(),
            sim_type: SimType::Esim,
            number: port_in.clone(),
            binding_months: Some(6),
            add_ons: vec![AddOnSelection {
                offering_id: "share".into(),
                quantity: 2,
                sim_type: Some(SimType::Psim),
            }],
        }),
        BasketCommandPayload::AddPlanLine(AddPlanLine {
            line_id: "l2".into(),
            offering_id: "o1".into(),
            sim_type: SimType::Psim,
            number: new_number.clone(),
            binding_months: None,
            add_ons: Vec::new(),
        }),
        BasketCommandPayload::UpdateLine(UpdateLine {
            line_id: "l1".into(),
            sim_type: Some(SimType::Psim),
            binding_months: None,
            add_ons: Some(Vec::new()),
        }),
        BasketCommandPayload::ClaimBasket(ClaimBasket { note: None }),
        BasketCommandPayload::MergeInto(MergeInto {
            target_basket_id: "b2".into(),
        }),
        BasketCommandPayload::AbsorbLines(AbsorbLines {
            source_basket_id: "b0".into(),
            lines_json: "[]".into(),
        }),
        BasketCommandPayload::ReturnLines(ReturnLines {
            target_basket_id: "b2".into(),
            reason_code: "basket_not_found".into(),
            detail: "no basket b2".into(),
        }),
        BasketCommandPayload::RemoveLine(RemoveLine {
            line_id: "l1".into(),
        }),
        BasketCommandPayload::AbandonBasket(AbandonBasket { reason: None }),
        BasketCommandPayload::CheckoutBasket(CheckoutBasket {
            return_url: None,
            contact_sealed: Some("pd1.sealed".into()),
        }),
    ];
    for payload in commands {
        round_trip(BasketCommand {
            command_id: "c".into(),
            tenant_id: "t".into(),
            basket_id: "b".into(),
            issued_at: 1,
            payload,
            customer_id: Some("cust".into()),
            holds_guest_token: true,
        });
    }
    let events = [
        BasketEventPayload::BasketCreated(BasketCreated {
            channel: "app".into(),
            customer_id: Some("cust".into()),
        }),
        BasketEventPayload::PlanLineAdded(PlanLineAdded {
            line_id: "l1".into(),
            offering_id: "o1".into(),
            sim_type: SimType::Esim,
            number: port_in,
            binding_months: Some(6),
        }),
        BasketEventPayload::LineRemoved(LineRemoved {
            line_id: "l1".into(),
        }),
        BasketEventPayload::BasketAbandoned(BasketAbandoned {
            reason: Some("ttl".into()),
        }),
    ];
    for payload in events {
        round_trip(BasketEvent {
            event_id: "e".into(),
            command_id: "c".into(),
            tenant_id: "t".into(),
            basket_id: "b".into(),
            version: 4,
            occurred_at: 2,
            payload,
        });
    }
}

#[test]
fn snapshot_contracts_round_trip() {
    round_trip(BasketSnapshot {
        tenant_id: "t".into(),
        basket_id: "b".into(),
        version: 3,
        status: BasketStatus::Merged,
        customer_id: Some("c".into()),
        channel: "web".into(),
        expires_at: 5,
        updated_at: 4,
        document: "{}".into(),
    });
    round_trip(PhoneNumber {
        msisdn: "+4520123456".into(),
        tenant_id: "t".into(),
        status: NumberStatus::Reserved,
        basket_id: Some("b".into()),
        reserved_until: Some(9),
        order_id: None,
        version: 2,
        updated_at: 1,
    });
}

#[test]
fn order_contracts_round_trip() {
    round_trip(OrderCommand {
        command_id: "c1".into(),
        tenant_id: "t".into(),
        order_id: "o".into(),
        issued_at: 1,
        customer_id: Some("alice".into()),
        payload: OrderCommandPayload::PlaceOrder(PlaceOrder {
            basket_id: "o".into(),
            basket_version: 4,
            basket_document: "{}".into(),
            frozen_until: 99,
            return_url: Some("https://shop.test/orders/o".into()),
            contact_sealed: Some("pd1.sealed".into()),
        }),
    });
    round_trip(OrderCommand {
        command_id: "c2".into(),
        tenant_id: "t".into(),
        order_id: "o".into(),
        issued_at: 2,
        customer_id: None,
        payload: OrderCommandPayload::CancelOrder(CancelOrder { reason: None }),
    });
    for payload in [
        OrderEventPayload::OrderStateChanged(OrderStateChanged {
            from: Some(OrderState::Pending),
            to: OrderState::InProgress,
            reason: None,
        }),
        OrderEventPayload::OrderItemStateChanged(OrderItemStateChanged {
            item_id: "l1".into(),
            from: None,
            to: OrderState::AssessingCancellation,
        }),
        OrderEventPayload::OrderStepChanged(OrderStepChanged {
            step: "capture".into(),
            state: "done".into(),
            detail: Some("x".into()),
        }),
    ] {
        round_trip(OrderEvent {
            event_id: "e".into(),
            tenant_id: "t".into(),
            order_id: "o".into(),
            version: 3,
            occurred_at: 5,
            cause: "c".into(),
            payload,
        });
    }
    round_trip(OrderSnapshot {
        tenant_id: "t".into(),
        order_id: "o".into(),
        version: 2,
        state: OrderState::PendingCancellation,
        customer_id: Some("alice".into()),
        created_at: 1,
        updated_at: 2,
        document: "{}".into(),
    });
}

#[test]
fn payment_contracts_round_trip() {
    let command = |payload| PaymentCommand {
        command_id: "o:1:create".into(),
        tenant_id: "t".into(),
        order_id: "o".into(),
        attempt: 1,
        issued_at: 3,
        provider: "stripe".into(),
        account_ref: "acct".into(),
        secret_ref: "file://stripe/t/key".into(),
        payload,
    };
    for payload in [
        PaymentCommandPayload::CreatePayment(CreatePayment {
            amount_minor: 29800,
            currency: "DKK".into(),
            customer_id: "alice".into(),
            description: "d".into(),
            return_url: "https://x".into(),
            save_for_subscription: true,
            expires_at: Some(7),
        }),
        PaymentCommandPayload::CapturePayment(CapturePayment {
            reference: "pi_1".into(),
            amount_minor: 1,
            currency: "DKK".into(),
        }),
        PaymentCommandPayload::CancelPayment(CancelPayment {
            reference: "pi_1".into(),
        }),
        PaymentCommandPayload::RefundPayment(RefundPayment {
            reference: "pi_1".into(),
            amount_minor: 1,
            currency: "DKK".into(),
        }),
        PaymentCommandPayload::SyncPayment(SyncPayment {
            provider_event_id: "evt_1".into(),
            reference: Some("pi_1".into()),
            notification: None,
        }),
    ] {
        round_trip(command(payload));
    }
    round_trip(PaymentEvent {
        event_id: "e".into(),
        tenant_id: "t".into(),
        order_id: "o".into(),
        attempt: 1,
        occurred_at: 4,
        provider: "adyen".into(),
        reference: "psp".into(),
        state: PaymentState::Refunded,
        amount_minor: 10,
        currency: "GBP".into(),
        client_secret: None,
        redirect_url: Some("https://pay".into()),
        payment_method_ref: Some("pm".into()),
        reason: None,
        cause: "o:1:refund:psp".into(),
    });
}

#[test]
fn msisdn_contracts_round_trip_and_same_shaped_branches_stay_apart() {
    // ReserveNumber and ExtendReservation have identical fields: decoding must go by branch
    // index, not by shape.
    for payload in [
        MsisdnCommandPayload::ReserveNumber(ReserveNumber {
            basket_id: "b".into(),
            ttl_seconds: 900,
        }),
        MsisdnCommandPayload::ExtendReservation(ExtendReservation {
            basket_id: "b".into(),
            ttl_seconds: 900,
        }),
        MsisdnCommandPayload::ReleaseNumber(ReleaseNumber {
            basket_id: "b".into(),
        }),
        MsisdnCommandPayload::ConfirmNumber(ConfirmNumber {
            basket_id: "b".into(),
            order_id: "o".into(),
        }),
        MsisdnCommandPayload::AddToPool(AddToPool {
            import_id: Some("i".into()),
        }),
        MsisdnCommandPayload::TransferReservation(TransferReservation {
            from_basket_id: "b".into(),
            to_basket_id: "c".into(),
            ttl_seconds: 60,
        }),
    ] {
        round_trip(MsisdnCommand {
            command_id: "c".into(),
            msisdn: "+4520123456".into(),
            tenant_id: "t".into(),
            issued_at: 1,
            payload,
        });
    }
    for payload in [
        MsisdnEventPayload::NumberReserved(NumberReserved {
            basket_id: "b".into(),
            expires_at: 10,
        }),
        MsisdnEventPayload::ReservationExtended(ReservationExtended {
            basket_id: "b".into(),
            expires_at: 10,
        }),
        MsisdnEventPayload::NumberReleased(NumberReleased {
            basket_id: "b".into(),
            reason: ReleaseReason::Expired,
        }),
        MsisdnEventPayload::NumberConfirmed(NumberConfirmed {
            basket_id: "b".into(),
            order_id: "o".into(),
        }),
        MsisdnEventPayload::ReservationRejected(ReservationRejected {
            basket_id: "b".into(),
            reason_code: "NUMBER_ALREADY_RESERVED".into(),
        }),
    ] {
        round_trip(MsisdnEvent {
            event_id: "e".into(),
            command_id: None,
            msisdn: "+4520123456".into(),
            tenant_id: "t".into(),
            occurred_at: 3,
            payload,
        });
    }
}

#[test]
fn a_reader_fills_defaults_for_fields_an_older_writer_did_not_have() {
    // An older writer schema of CreateBasket without `customer_id` and `segment`: the current type must
    // still decode it, taking the serde default.
    let old: serde_json::Value = serde_json::from_str(BasketCommand::SCHEMA).unwrap();
    let mut old = old;
    // ... and without the envelope's `customer_id` (the sixth field).
    old["fields"].as_array_mut().unwrap().truncate(5);
    let branches = old["fields"][4]["type"].as_array_mut().unwrap();
    branches[0]["fields"].as_array_mut().unwrap().truncate(1);
    let old_schema = Schema::parse_str(&old.to_string()).unwrap();
    let value = apache_avro::types::Value::Record(vec![
        ("command_id".into(), "c".into()),
        ("tenant_id".into(), "t".into()),
        ("basket_id".into(), "b".into()),
        (
            "issued_at".into(),
            apache_avro::types::Value::TimestampMillis(1),
        ),
        (
            "payload".into(),
            apache_avro::types::Value::Union(
                0,
                Box::new(apache_avro::types::Value::Record(vec![(
                    "channel".into(),
                    "web".into(),
                )])),
            ),
        ),
    ]);
    #[allow(deprecated)]
    let bytes = apache_avro::to_avro_datum(&old_schema, value).unwrap();
    #[allow(deprecated)]
    let decoded = apache_avro::from_avro_datum(&old_schema, &mut &bytes[..], None).unwrap();
    let command: BasketCommand = tcom_schemas::wire::from_writer_value(&decoded).unwrap();
    assert_eq!(
        command.payload,
        BasketCommandPayload::CreateBasket(CreateBasket {
            channel: "web".into(),
            customer_id: None,
            segment: "consumer".into(),
        })
    );
}

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Released versions of a topic's schema, oldest first.
fn released_versions(topic: &str) -> Vec<(u32, Schema)> {
    let dir = crate_dir().join("compat").join(topic);
    let mut versions: Vec<(u32, Schema)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (every topic needs at least v1 there)",
                dir.display()
            )
        })
        .map(|entry| entry.unwrap().path())
        .filter_map(|path| {
            let stem = path
                .file_stem()?
                .to_str()?
                .strip_prefix('v')?
                .parse::<u32>()
                .ok()?;
            let text = std::fs::read_to_string(&path).unwrap();
            Some((
                stem,
                Schema::parse_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
            ))
        })
        .collect();
    versions.sort_by_key(|(v, _)| *v);
    assert!(
        !versions.is_empty(),
        "no released version in {}",
        dir.display()
    );
    versions
}

/// Runs git in the repository and returns its output; fails the test (does not skip) when
/// git cannot run or refuses: the comparison with the committed history is part of the
/// compatibility promise, and a check that silently compares nothing proves nothing.
fn git(args: &[&str]) -> std::process::Output {
    let root = crate_dir().join("..");
    let output = Command::new("git")
        .arg("-C")
        .arg(&root)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "git {args:?} could not run ({e}): the schema compatibility check compares each \
                 schema with its previous committed version and needs git and the repository's \
                 history (a `git clone`, not an exported tree)"
            )
        });
    assert!(
        output.status.success(),
        "git {args:?} failed in {}: {}",
        root.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// What the committed history says about a schema file.
#[derive(Debug)]
enum Previous {
    /// The newest committed version whose text differs from the file as it is now, and the
    /// commit it is from.
    Version(String, Schema),
    /// Every committed version equals the file: it was added and never changed since.
    None,
    /// A shallow clone: the history may end before the previous version.
    Shallow,
}

/// The previous version of `schemas/avro/<topic>.avsc`.
///
/// Decided (issue 11): not `HEAD` alone — in a clean clone `HEAD` equals the tree and the
/// comparison would be empty — but the newest version in the file's history that differs from
/// the file now: with uncommitted edits that is usually `HEAD`, in a clean clone the version
/// before the last commit that changed it. Without git (or outside a git checkout) the test
/// fails with a message. In a shallow clone the history may not reach the previous version,
/// so the check falls back to the released versions in `compat/` alone and says so in the
/// test output. CI runs from a full `git clone` of main, where none of this is skipped.
fn previous_version(topic: &str) -> Previous {
    let shallow = git(&["rev-parse", "--is-shallow-repository"]);
    if String::from_utf8_lossy(&shallow.stdout).trim() == "true" {
        return Previous::Shallow;
    }
    let relative = format!("schemas/avro/{topic}.avsc");
    let path = crate_dir().join("avro").join(format!("{topic}.avsc"));
    let now = std::fs::read_to_string(&path).unwrap();
    let log = git(&["log", "--format=%H", "--", &relative]);
    let commits = String::from_utf8_lossy(&log.stdout).into_owned();
    assert!(
        !commits.trim().is_empty(),
        "{relative} has no committed history: commit it (or this is not the repository's checkout)"
    );
    for commit in commits.lines() {
        // The commit that deleted the file (before it was added again) has no version of it.
        let Ok(shown) = Command::new("git")
            .arg("-C")
            .arg(crate_dir().join(".."))
            .args(["show", &format!("{commit}:{relative}")])
            .output()
        else {
            continue;
        };
        if !shown.status.success() {
            continue;
        }
        let text = String::from_utf8_lossy(&shown.stdout).into_owned();
        if text != now {
            let schema = Schema::parse_str(&text)
                .unwrap_or_else(|e| panic!("{relative} at {commit} does not parse: {e}"));
            return Previous::Version(commit[..12].to_owned(), schema);
        }
    }
    Previous::None
}

#[test]
fn every_schema_reads_data_written_with_every_released_and_the_previous_committed_version() {
    let mut failures = Vec::new();
    for contract in all() {
        let current = Schema::parse_str(contract.schema).unwrap();
        let mut existing = released_versions(contract.topic);
        let mut previous_commit = None;
        match previous_version(contract.topic) {
            Previous::Version(commit, schema) => {
                existing.push((u32::MAX, schema));
                previous_commit = Some(commit);
            }
            Previous::None => {}
            Previous::Shallow => println!(
                "{}: shallow clone, the previous committed version may be missing: checked \
                 against the released versions in schemas/compat only",
                contract.topic
            ),
        }
        let borrowed: Vec<(u32, &Schema)> = existing.iter().map(|(v, s)| (*v, s)).collect();
        for message in check(CompatibilityLevel::BackwardTransitive, &current, &borrowed) {
            let previous = previous_commit
                .as_deref()
                .map(|c| format!("the version committed in {c}"));
            failures.push(format!(
                "{}: {}",
                contract.topic,
                message.replace(
                    &u32::MAX.to_string(),
                    previous.as_deref().unwrap_or("previous")
                )
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "incompatible schema changes:\n{}",
        failures.join("\n")
    );
}

#[test]
fn the_previous_committed_version_is_found() {
    // Without this, a broken history lookup would silently compare nothing. tenants.avsc has
    // been changed since it was added, so a full clone always has a previous version of it.
    // Shown to fail by ending the history loop after its first commit (HEAD only, the old
    // behaviour): "no previous committed version of tenants.avsc was found". And without git
    // on PATH both tests fail with "git [..] could not run".
    match previous_version("tenants") {
        Previous::Version(..) => {}
        Previous::Shallow => println!("shallow clone: the previous version cannot be looked up"),
        Previous::None => panic!("no previous committed version of tenants.avsc was found"),
    }
}

#[test]
fn the_compatibility_check_catches_a_breaking_change() {
    // Guard against a check that passes everything: dropping a default-less field from the
    // released v1 must be caught.
    let released = released_versions("basket.commands");
    let mut broken: serde_json::Value = serde_json::from_str(BasketCommand::SCHEMA).unwrap();
    broken["fields"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "channel_ref", "type": "string"}));
    let broken = Schema::parse_str(&broken.to_string()).unwrap();
    let borrowed: Vec<(u32, &Schema)> = released.iter().map(|(v, s)| (*v, s)).collect();
    assert!(!check(CompatibilityLevel::BackwardTransitive, &broken, &borrowed).is_empty());
}

#[test]
fn tcm_contracts_round_trip() {
    use tcom_schemas::tcm::*;
    round_trip(TcmCommand {
        command_id: "o1:l1:activate".into(),
        tenant_id: "t1".into(),
        order_id: "o1".into(),
        issued_at: 1_700_000_000_000,
        payload: TcmCommandPayload::ActivateSubscription(ActivateSubscription {
            item_id: "l1".into(),
            customer_id: "cus_1".into(),
            plan_code: "fri-5g".into(),
            msisdn: "+4520000001".into(),
            sim_type: "ESIM".into(),
            iccid: Some("8945000000000000001".into()),
            binding_end_date: Some("2027-06-01".into()),
            shared_data_sims: vec!["8945000000000000002".into()],
            owner_name_sealed: Some("pd1.x".into()),
        }),
    });
    for payload in [
        TcmEventPayload::SubscriptionActivated(SubscriptionActivated {
            item_id: "l1".into(),
            subscription_id: "S0000001".into(),
            tcm_customer_id: "C0000001".into(),
        }),
        TcmEventPayload::ActivationRefused(ActivationRefused {
            item_id: "l1".into(),
            code: "TCM-4091".into(),
            reason: "MSISDN already active".into(),
        }),
        TcmEventPayload::ActivationDelayed(ActivationDelayed {
            item_id: "l1".into(),
            reason: "TCM unavailable".into(),
        }),
    ] {
        round_trip(TcmEvent {
            event_id: "e1".into(),
            tenant_id: "t1".into(),
            order_id: "o1".into(),
            occurred_at: 1_700_000_000_000,
            cause: "o1:l1:activate".into(),
            payload,
        });
    }
}

#[test]
fn sim_contracts_round_trip() {
    use tcom_schemas::sim::*;
    for payload in [
        SimCommandPayload::PrepareEsimProfiles(PrepareEsimProfiles {
            item_id: "l1".into(),
            customer_id: "cus_1".into(),
            profiles: 2,
        }),
        SimCommandPayload::ShipSims(ShipSims {
            item_id: "l1".into(),
            customer_id: "cus_1".into(),
            sims: 1,
            recipient_sealed: Some("pd1.x".into()),
        }),
        SimCommandPayload::TrackShipment(TrackShipment {
            item_id: "l1".into(),
            shipment_id: "SHP0000001".into(),
        }),
    ] {
        round_trip(SimCommand {
            command_id: "o1:l1:sim".into(),
            tenant_id: "t1".into(),
            order_id: "o1".into(),
            issued_at: 1_700_000_000_000,
            payload,
        });
    }
    for payload in [
        SimEventPayload::EsimProfilesReady(EsimProfilesReady {
            item_id: "l1".into(),
            profiles: vec![EsimProfile {
                iccid: "8945000000000000001".into(),
                activation_code_sealed: "pd1.a".into(),
                confirmation_code_sealed: Some("pd1.c".into()),
            }],
        }),
        SimEventPayload::ShipmentCreated(ShipmentCreated {
            item_id: "l1".into(),
            shipment_id: "SHP0000001".into(),
            tracking_number: "TR1".into(),
            iccids: vec!["8945000000000000002".into()],
        }),
        SimEventPayload::ShipmentTracked(ShipmentTracked {
            item_id: "l1".into(),
            shipment_id: "SHP0000001".into(),
            status: "delivered".into(),
            sequence: 3,
        }),
        SimEventPayload::SimDeliveryRefused(SimDeliveryRefused {
            item_id: "l1".into(),
            code: "8.2.1/3.9".into(),
            reason: "Profile ICCID unknown".into(),
        }),
        SimEventPayload::SimDeliveryDelayed(SimDeliveryDelayed {
            item_id: "l1".into(),
            reason: "SM-DP+ unavailable".into(),
        }),
    ] {
        round_trip(SimEvent {
            event_id: "e1".into(),
            tenant_id: "t1".into(),
            order_id: "o1".into(),
            occurred_at: 1_700_000_000_000,
            cause: "o1:l1:sim".into(),
            payload,
        });
    }
}

#[test]
fn porting_contracts_round_trip() {
    use tcom_schemas::porting::*;
    for payload in [
        PortingCommandPayload::SubmitPort(SubmitPort {
            item_id: "l1".into(),
            customer_id: "cus_1".into(),
            attempt: 2,
            country: "DK".into(),
            msisdn: "+4520123456".into(),
            current_operator: "Telia".into(),
            sim_icc: Some("8945000000000000001".into()),
            pac: None,
            owner_cpr_sealed: Some("pd1.x".into()),
            requested_date: "2026-12-07".into(),
        }),
        PortingCommandPayload::CheckPort(CheckPort {
            item_id: "l1".into(),
            porting_id: "P1".into(),
        }),
    ] {
        round_trip(PortingCommand {
            command_id: "o1:l1:port:2".into(),
            tenant_id: "t1".into(),
            order_id: "o1".into(),
            issued_at: 1_700_000_000_000,
            payload,
        });
    }
    for payload in [
        PortingEventPayload::PortSubmitted(PortSubmitted {
            item_id: "l1".into(),
            attempt: 1,
            porting_id: "P1".into(),
            answer_due_at: 1_700_172_800_000,
        }),
        PortingEventPayload::PortAccepted(PortAccepted {
            item_id: "l1".into(),
            porting_id: "P1".into(),
            port_date: "2026-12-07".into(),
            executes_at: 1_765_069_200_000,
        }),
        PortingEventPayload::PortRejected(PortRejected {
            item_id: "l1".into(),
            porting_id: "P1".into(),
            code: "wrong_icc".into(),
            reason: "ICC does not match".into(),
        }),
        PortingEventPayload::PortCompleted(PortCompleted {
            item_id: "l1".into(),
            porting_id: "P1".into(),
            msisdn: "+4520123456".into(),
            completed_at: 1_765_069_200_000,
        }),
        PortingEventPayload::PortingDelayed(PortingDelayed {
            item_id: "l1".into(),
            reason: "clearing house unavailable".into(),
        }),
    ] {
        round_trip(PortingEvent {
            event_id: "e1".into(),
            tenant_id: "t1".into(),
            order_id: "o1".into(),
            occurred_at: 1_700_000_000_000,
            cause: "o1:l1:port:1".into(),
            payload,
        });
    }
}
