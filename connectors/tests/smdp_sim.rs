//! The SM-DP+ simulator (`tcom smdp-sim`) driven through the platform's ES2+ client and raw
//! HTTP: started in-process on a free port, the phone played through `/_sim/download`, its
//! faults switched on through `/_sim/faults`, and what it did checked through `/_sim/ledger`.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tcom_connectors::esim::ActivationCode;
use tcom_connectors::esim::es2plus::{
    Es2PlusClient, Es2PlusError, FinalProfileStatus, SmdpSettings,
};
use tcom_connectors::esim::smdp_sim::{self, SmdpSimOptions};

const ES2PLUS: &str = "/gsma/rsp2/es2plus";
const EID: &str = "89049032123451234512345678901235";

/// A running simulator of its own.
struct Smdp {
    base: String,
    http: reqwest::Client,
}

impl Smdp {
    async fn start() -> Self {
        Self::start_with(SmdpSimOptions::default()).await
    }

    async fn start_with(options: SmdpSimOptions) -> Self {
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(smdp_sim::serve_with(
            "127.0.0.1:0".parse().unwrap(),
            options,
            std::future::pending(),
            move |address| {
                let _ = tx.send(address);
            },
        ));
        let base = format!("http://{}", rx.await.unwrap());
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        Self { base, http }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn client(&self) -> Es2PlusClient {
        Es2PlusClient::new(&self.base, "test-token", Duration::from_secs(5))
    }

    async fn answer(response: reqwest::Response) -> (StatusCode, Value) {
        let status = response.status();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
        (status, body)
    }

    /// An ES2+ call with the right headers, `body` completed with a header for `call_id`.
    async fn es2plus(&self, function: &str, call_id: &str, mut body: Value) -> Value {
        body["header"] = json!({
            "functionRequesterIdentifier": "test",
            "functionCallIdentifier": call_id,
        });
        let response = self
            .http
            .post(self.url(&format!("{ES2PLUS}/{function}")))
            .bearer_auth("test-token")
            .header("X-Admin-Protocol", "gsma/rsp/v2.1.0")
            .json(&body)
            .send()
            .await
            .unwrap();
        let (status, answer) = Self::answer(response).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        answer
    }

    /// The phone downloading with an activation code.
    async fn download(&self, body: Value) -> (StatusCode, Value) {
        let url = self.url("/_sim/download");
        Self::answer(self.http.post(url).json(&body).send().await.unwrap()).await
    }

    async fn faults(&self, faults: Value) {
        let url = self.url("/_sim/faults");
        let response = self.http.post(url).json(&faults).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }

    async fn ledger(&self) -> Value {
        let response = self.http.get(self.url("/_sim/ledger")).send().await;
        let (status, ledger) = Self::answer(response.unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        ledger
    }
}

fn status(answer: &Value) -> &Value {
    &answer["header"]["functionExecutionStatus"]
}

/// `(subjectCode, reasonCode)` of a `Failed` answer.
fn codes(answer: &Value) -> (String, String) {
    let status = status(answer);
    assert_eq!(status["status"], "Failed", "{answer}");
    let data = &status["statusCodeData"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (text(&data["subjectCode"]), text(&data["reasonCode"]))
}

fn refused(result: Result<impl std::fmt::Debug, Es2PlusError>) -> (String, String) {
    match result {
        Err(Es2PlusError::Refused {
            subject_code,
            reason_code,
            ..
        }) => (subject_code, reason_code),
        other => panic!("not refused: {other:?}"),
    }
}

fn pair(subject: &str, reason: &str) -> (String, String) {
    (subject.to_owned(), reason.to_owned())
}

fn luhn_valid(number: &str) -> bool {
    let sum: u32 = number
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let twice = d * 2;
                if twice > 9 { twice - 9 } else { twice }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[tokio::test]
async fn an_order_is_reserved_confirmed_and_downloaded_by_the_device() {
    let smdp = Smdp::start().await;
    let client = smdp.client();
    let order = client.download_order("call-1", None).await.unwrap();
    assert_eq!(order.iccid.len(), 19, "{}", order.iccid);
    assert!(order.iccid.starts_with("8945"), "{}", order.iccid);
    assert!(order.iccid.bytes().all(|b| b.is_ascii_digit()));
    assert!(luhn_valid(&order.iccid), "{}", order.iccid);
    assert_eq!(
        smdp.ledger().await["orders"][&order.iccid]["state"],
        "reserved"
    );

    let confirmed = client
        .confirm_order("call-2", &order.iccid, None)
        .await
        .unwrap();
    assert_eq!(confirmed.iccid, order.iccid);
    let code = &confirmed.activation_code;
    assert_eq!(code.smdp_address(), smdp_sim::DEFAULT_SMDP_ADDRESS);
    assert!(!code.confirmation_code_required());
    let groups: Vec<&str> = code.matching_id().split('-').collect();
    assert_eq!(groups.len(), 4, "{}", code.matching_id());
    assert!(groups.iter().all(|g| {
        g.len() == 4
            && g.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    }));
    let text = code.to_lpa_string();
    assert_eq!(text, format!("LPA:1$smdp.tcom.test${}", code.matching_id()));
    assert_eq!(&ActivationCode::parse(&text).unwrap(), code);

    let ledger = smdp.ledger().await;
    let entry = &ledger["orders"][&order.iccid];
    assert_eq!(
        entry["state"], "released",
        "confirmed with the release flag"
    );
    assert_eq!(entry["matchingId"], code.matching_id());
    assert_eq!(entry["confirmationCode"], false);

    let (status, downloaded) = smdp
        .download(json!({"activationCode": text, "eid": EID}))
        .await;
    assert_eq!(status, StatusCode::OK, "{downloaded}");
    assert_eq!(downloaded["iccid"], order.iccid.as_str());
    assert_eq!(downloaded["state"], "downloaded");
    let ledger = smdp.ledger().await;
    let entry = &ledger["orders"][&order.iccid];
    assert_eq!(entry["state"], "downloaded");
    assert_eq!(entry["eid"], EID, "the device's EID is recorded");
    assert!(entry["downloadedAt"].is_string(), "{entry}");

    let (status, again) = smdp.download(json!({"activationCode": text})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(again["error"], "profile_downloaded");
    // A downloaded profile's order can no longer be cancelled.
    let cancel = client
        .cancel_order("call-3", &order.iccid, FinalProfileStatus::Available)
        .await;
    assert_eq!(refused(cancel), pair("8.2.1", "3.5"));
}

#[tokio::test]
async fn a_confirmation_code_guards_the_download() {
    let smdp = Smdp::start().await;
    let client = smdp.client();
    let order = client.download_order("d-1", None).await.unwrap();
    let confirmed = client
        .confirm_order("c-1", &order.iccid, Some("4711"))
        .await
        .unwrap();
    let text = confirmed.activation_code.to_lpa_string();
    assert!(text.ends_with("$$1"), "flagged for the device: {text}");
    assert!(
        !text.contains("4711"),
        "the code is never in the activation code"
    );
    assert!(
        ActivationCode::parse(&text)
            .unwrap()
            .confirmation_code_required()
    );

    let (status, answer) = smdp.download(json!({"activationCode": text})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(answer["error"], "confirmation_code_required");
    let (status, answer) = smdp
        .download(json!({"activationCode": text, "confirmationCode": "1234"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(answer["error"], "confirmation_code_mismatch");
    let ledger = smdp.ledger().await;
    let entry = &ledger["orders"][&order.iccid];
    assert_eq!(entry["state"], "released", "a wrong code downloads nothing");
    assert_eq!(entry["confirmationCode"], true);
    assert_eq!(entry["wrongConfirmationCodes"], 1);
    assert!(
        !ledger.to_string().contains("4711"),
        "the ledger never shows the code: {ledger}"
    );

    let (status, answer) = smdp
        .download(json!({"activationCode": text, "confirmationCode": "4711"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["iccid"], order.iccid.as_str());
}

#[tokio::test]
async fn a_replayed_function_call_answers_the_first_answer_and_acts_once() {
    let smdp = Smdp::start().await;
    let first = smdp.es2plus("downloadOrder", "same", json!({})).await;
    assert_eq!(status(&first)["status"], "Executed-Success", "{first}");
    let again = smdp.es2plus("downloadOrder", "same", json!({})).await;
    assert_eq!(again, first);
    let ledger = smdp.ledger().await;
    assert_eq!(ledger["orders"].as_object().unwrap().len(), 1, "{ledger}");
    assert_eq!(
        ledger["calls"]["same"],
        json!({"function": "downloadOrder", "seen": 2, "status": "Executed-Success"})
    );
    assert_eq!(ledger["availableProfiles"], 99);

    // The same identifier for another request is refused, and does nothing either.
    let iccid = first["iccid"].as_str().unwrap();
    let other = smdp
        .es2plus("downloadOrder", "same", json!({"profileType": "DEFAULT"}))
        .await;
    assert_eq!(codes(&other), pair("8.1", "3.3"));
    let other = smdp
        .es2plus(
            "confirmOrder",
            "same",
            json!({"iccid": iccid, "releaseFlag": true}),
        )
        .await;
    assert_eq!(codes(&other), pair("8.1", "3.3"));
    let ledger = smdp.ledger().await;
    assert_eq!(ledger["orders"][iccid]["state"], "reserved");
    assert_eq!(ledger["calls"]["same"]["seen"], 4);

    // A Failed answer is replayed too: the call identifier is spent. Replayed once the
    // profile is confirmed, it still answers the failure and releases nothing.
    let failed = smdp
        .es2plus("releaseProfile", "r-1", json!({"iccid": iccid}))
        .await;
    assert_eq!(codes(&failed), pair("8.2.1", "3.5"));
    let body = json!({"iccid": iccid, "releaseFlag": false});
    let confirmed = smdp.es2plus("confirmOrder", "c-0", body).await;
    assert_eq!(status(&confirmed)["status"], "Executed-Success");
    let replayed = smdp
        .es2plus("releaseProfile", "r-1", json!({"iccid": iccid}))
        .await;
    assert_eq!(replayed, failed);
    assert_eq!(smdp.ledger().await["orders"][iccid]["state"], "confirmed");

    // Through the client: confirming again releases it with the same matching ID, and a
    // retry of that call answers the same again.
    let client = smdp.client();
    let released = client.confirm_order("c-1", iccid, None).await.unwrap();
    assert_eq!(
        released.activation_code.matching_id(),
        confirmed["matchingId"]
    );
    let again = client.confirm_order("c-1", iccid, None).await.unwrap();
    assert_eq!(again, released);
    let ledger = smdp.ledger().await;
    assert_eq!(ledger["orders"][iccid]["state"], "released");
    assert_eq!(ledger["calls"]["c-1"]["seen"], 2);
}

#[tokio::test]
async fn confirming_again_is_idempotent_and_another_matching_id_is_in_use() {
    let smdp = Smdp::start().await;
    let client = smdp.client();
    let first = client.download_order("d-1", None).await.unwrap().iccid;
    let second = client.download_order("d-2", None).await.unwrap().iccid;
    assert_ne!(first, second);

    let body = json!({"iccid": first, "matchingId": "ABCD-1234-EFGH-5678", "releaseFlag": false});
    let confirmed = smdp.es2plus("confirmOrder", "c-1", body.clone()).await;
    assert_eq!(
        status(&confirmed)["status"],
        "Executed-Success",
        "{confirmed}"
    );
    assert_eq!(confirmed["matchingId"], "ABCD-1234-EFGH-5678");
    assert_eq!(confirmed["smdpAddress"], "smdp.tcom.test");
    assert!(confirmed.get("eid").is_none(), "no EID known: {confirmed}");
    // Another call identifier, the same confirmation: the same answer.
    let again = smdp.es2plus("confirmOrder", "c-2", body).await;
    assert_eq!(again, confirmed);
    let without = smdp
        .es2plus(
            "confirmOrder",
            "c-3",
            json!({"iccid": first, "releaseFlag": false}),
        )
        .await;
    assert_eq!(without["matchingId"], "ABCD-1234-EFGH-5678");

    let other = smdp
        .es2plus(
            "confirmOrder",
            "c-4",
            json!({"iccid": first, "matchingId": "WXYZ-0000", "releaseFlag": false}),
        )
        .await;
    assert_eq!(codes(&other), pair("8.2.1", "3.3"));
    let with_a_code = client.confirm_order("c-5", &first, Some("1111")).await;
    assert_eq!(
        refused(with_a_code),
        pair("8.2.1", "3.3"),
        "confirmed without a code"
    );
    let taken = smdp
        .es2plus(
            "confirmOrder",
            "c-6",
            json!({"iccid": second, "matchingId": "ABCD-1234-EFGH-5678", "releaseFlag": true}),
        )
        .await;
    assert_eq!(codes(&taken), pair("8.2.6", "3.3"));
    let ledger = smdp.ledger().await;
    assert_eq!(ledger["orders"][&first]["state"], "confirmed");
    assert_eq!(ledger["orders"][&second]["state"], "reserved");
    assert_eq!(ledger["orders"][&second]["matchingId"], Value::Null);

    // Not released yet: the device cannot have it; releaseProfile lets it.
    let code = "LPA:1$smdp.tcom.test$ABCD-1234-EFGH-5678";
    let (status_code, answer) = smdp.download(json!({"activationCode": code})).await;
    assert_eq!(status_code, StatusCode::CONFLICT);
    assert_eq!(answer["error"], "profile_not_released");
    client.release_profile("r-1", &first).await.unwrap();
    let (status_code, _) = smdp.download(json!({"activationCode": code})).await;
    assert_eq!(status_code, StatusCode::OK);
}

#[tokio::test]
async fn unknown_taken_and_invalid_profiles_are_refused() {
    let smdp = Smdp::start().await;
    let client = smdp.client();
    let unknown = client
        .download_order("d-1", Some("8945990100000099990"))
        .await;
    assert_eq!(refused(unknown), pair("8.2.1", "3.9"));
    let order = client.download_order("d-2", None).await.unwrap();
    let taken = client.download_order("d-3", Some(&order.iccid)).await;
    assert_eq!(refused(taken), pair("8.2.1", "3.3"));
    let unknown = client
        .confirm_order("c-1", "8945990100000099990", None)
        .await;
    assert_eq!(refused(unknown), pair("8.2.1", "3.9"));
    let invalid = client.confirm_order("c-2", "12345", None).await;
    assert_eq!(refused(invalid), pair("8.2.1", "2.1"));
    // A profile of the pool that nobody ordered cannot be confirmed.
    let ledger = smdp.ledger().await;
    let ordered: Vec<&String> = ledger["orders"].as_object().unwrap().keys().collect();
    assert_eq!(ordered, [&order.iccid]);
    // Profiles are handed out in pool order: serials 1, 2, … before the check digit.
    assert!(
        order.iccid.starts_with("894599010000000001"),
        "{}",
        order.iccid
    );
    let next = client.download_order("d-4", None).await.unwrap();
    assert!(
        next.iccid.starts_with("894599010000000002"),
        "{}",
        next.iccid
    );

    let missing = smdp
        .es2plus("confirmOrder", "c-3", json!({"iccid": order.iccid}))
        .await;
    assert_eq!(
        codes(&missing),
        pair("8.1", "2.2"),
        "releaseFlag is mandatory"
    );
    let unknown_member = smdp
        .es2plus(
            "confirmOrder",
            "c-4",
            json!({"iccid": order.iccid, "releaseFlag": true, "colour": "red"}),
        )
        .await;
    assert_eq!(codes(&unknown_member), pair("8.1", "2.1"));
    let bad_eid = smdp
        .es2plus("downloadOrder", "d-5", json!({"eid": "1234"}))
        .await;
    assert_eq!(codes(&bad_eid), pair("8.1.1", "2.1"));
    let bad_matching_id = smdp
        .es2plus(
            "confirmOrder",
            "c-5",
            json!({"iccid": order.iccid, "matchingId": "lower-case", "releaseFlag": true}),
        )
        .await;
    assert_eq!(codes(&bad_matching_id), pair("8.2.6", "2.1"));
    let bad_type = smdp
        .es2plus("downloadOrder", "d-6", json!({"profileType": "GOLD"}))
        .await;
    assert_eq!(codes(&bad_type), pair("8.2.5", "3.9"));
    // The failed profile is untouched.
    assert_eq!(
        smdp.ledger().await["orders"][&order.iccid]["state"],
        "reserved"
    );

    // No readable header: Failed, and nothing recorded.
    let url = smdp.url(&format!("{ES2PLUS}/downloadOrder"));
    let response = smdp
        .http
        .post(&url)
        .bearer_auth("t")
        .header("X-Admin-Protocol", "gsma/rsp/v2.1.0")
        .json(&json!({"header": {"functionRequesterIdentifier": "test"}}))
        .send()
        .await
        .unwrap();
    let (http_status, answer) = Smdp::answer(response).await;
    assert_eq!(http_status, StatusCode::OK);
    assert_eq!(codes(&answer), pair("8.1", "2.2"));
    let response = smdp
        .http
        .post(&url)
        .bearer_auth("t")
        .header("X-Admin-Protocol", "gsma/rsp/v2.1.0")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let calls = smdp.ledger().await["calls"].as_object().unwrap().len();
    assert_eq!(calls, 11, "every call with a header, and none without");
}

#[tokio::test]
async fn an_eid_given_at_the_order_binds_the_confirmation_and_the_device() {
    let smdp = Smdp::start().await;
    let ordered = smdp
        .es2plus("downloadOrder", "d-1", json!({"eid": EID}))
        .await;
    let iccid = ordered["iccid"].as_str().unwrap();
    let other_eid = "89049032123451234512345678909999";
    let refused_eid = smdp
        .es2plus(
            "confirmOrder",
            "c-1",
            json!({"iccid": iccid, "eid": other_eid, "releaseFlag": true}),
        )
        .await;
    assert_eq!(codes(&refused_eid), pair("8.1.1", "3.8"));
    let confirmed = smdp
        .es2plus(
            "confirmOrder",
            "c-2",
            json!({"iccid": iccid, "releaseFlag": true}),
        )
        .await;
    assert_eq!(confirmed["eid"], EID, "{confirmed}");
    let code = format!(
        "LPA:1$SMDP.TCOM.TEST${}",
        confirmed["matchingId"].as_str().unwrap()
    );
    let (status_code, answer) = smdp
        .download(json!({"activationCode": code, "eid": other_eid}))
        .await;
    assert_eq!(status_code, StatusCode::FORBIDDEN);
    assert_eq!(answer["error"], "eid_mismatch");
    let (status_code, _) = smdp
        .download(json!({"activationCode": code, "eid": EID}))
        .await;
    assert_eq!(
        status_code,
        StatusCode::OK,
        "the address compares without case"
    );
}

#[tokio::test]
async fn the_device_needs_this_smdp_and_a_known_matching_id() {
    let smdp = Smdp::start().await;
    for (code, status_code, error) in [
        (
            "not a code",
            StatusCode::BAD_REQUEST,
            "activation_code_invalid",
        ),
        (
            "LPA:1$smdp.example.com$ABCD",
            StatusCode::NOT_FOUND,
            "smdp_address_mismatch",
        ),
        (
            "LPA:1$smdp.tcom.test$ABCD",
            StatusCode::NOT_FOUND,
            "matching_id_unknown",
        ),
    ] {
        let (status, answer) = smdp.download(json!({"activationCode": code})).await;
        assert_eq!(status, status_code, "{code}");
        assert_eq!(answer["error"], error, "{code}");
    }
    let (status, answer) = smdp.download(json!({"code": "x"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"], "bad_request");
}

#[tokio::test]
async fn cancelling_returns_a_profile_to_the_pool_or_withdraws_it() {
    let smdp = Smdp::start_with(SmdpSimOptions {
        profiles_per_type: 2,
        ..SmdpSimOptions::default()
    })
    .await;
    let client = smdp.client();
    let first = client.download_order("d-1", None).await.unwrap().iccid;
    let second = client.download_order("d-2", None).await.unwrap().iccid;
    let none_left = client.download_order("d-3", None).await;
    assert_eq!(refused(none_left), pair("8.2.5", "3.7"));

    let confirmed = client.confirm_order("c-1", &first, None).await.unwrap();
    client
        .cancel_order("x-1", &first, FinalProfileStatus::Available)
        .await
        .unwrap();
    let ledger = smdp.ledger().await;
    assert_eq!(ledger["orders"][&first]["state"], "cancelled");
    assert_eq!(ledger["orders"][&first]["finalProfileStatus"], "Available");
    assert_eq!(ledger["availableProfiles"], 1);
    let code = confirmed.activation_code.to_lpa_string();
    let (status_code, answer) = smdp.download(json!({"activationCode": code})).await;
    assert_eq!(status_code, StatusCode::CONFLICT);
    assert_eq!(answer["error"], "order_cancelled");
    let again = client
        .cancel_order("x-2", &first, FinalProfileStatus::Available)
        .await;
    assert_eq!(refused(again), pair("8.2.1", "3.5"));
    // Back in the pool: ordered again, by its ICCID.
    let reordered = client.download_order("d-4", Some(&first)).await.unwrap();
    assert_eq!(reordered.iccid, first);
    assert_eq!(smdp.ledger().await["orders"][&first]["state"], "reserved");

    let wrong = smdp
        .es2plus(
            "cancelOrder",
            "x-3",
            json!({"iccid": second, "matchingId": "NOT-HIS", "finalProfileStatusIndicator": "Unavailable"}),
        )
        .await;
    assert_eq!(codes(&wrong), pair("8.2.6", "3.10"));
    client
        .cancel_order("x-4", &second, FinalProfileStatus::Unavailable)
        .await
        .unwrap();
    let withdrawn = client.download_order("d-5", Some(&second)).await;
    assert_eq!(refused(withdrawn), pair("8.2.1", "3.7"));
    assert_eq!(smdp.ledger().await["availableProfiles"], 0);
}

#[tokio::test]
async fn requests_need_a_token_and_the_admin_protocol() {
    let smdp = Smdp::start().await;
    let url = smdp.url(&format!("{ES2PLUS}/downloadOrder"));
    let body =
        json!({"header": {"functionRequesterIdentifier": "t", "functionCallIdentifier": "1"}});
    let response = smdp
        .http
        .post(&url)
        .header("X-Admin-Protocol", "gsma/rsp/v2.1.0")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let response = smdp
        .http
        .post(&url)
        .bearer_auth("t")
        .json(&body)
        .send()
        .await;
    let (status_code, answer) = Smdp::answer(response.unwrap()).await;
    assert_eq!(status_code, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"], "admin_protocol");
    let response = smdp
        .http
        .post(&url)
        .bearer_auth("t")
        .header("X-Admin-Protocol", "gsma/rsp/v3.0.0")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        smdp.ledger().await["calls"],
        json!({}),
        "nothing reached the SM-DP+"
    );

    let no_token = Es2PlusClient::new(&smdp.base, "", Duration::from_secs(5));
    let result = no_token.download_order("d-1", None).await;
    match result {
        Err(e @ Es2PlusError::Refused { .. }) => {
            assert!(e.is_status("HTTP", "401"), "{e:?}");
            assert!(!e.is_outage());
        }
        other => panic!("{other:?}"),
    }

    let response = smdp
        .http
        .get(&url)
        .bearer_auth("t")
        .header("X-Admin-Protocol", "gsma/rsp/v2.1.0")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let response = smdp
        .http
        .post(smdp.url(&format!("{ES2PLUS}/handleDownloadProgressInfo")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let (status_code, health) =
        Smdp::answer(smdp.http.get(smdp.url("/healthz")).send().await.unwrap()).await;
    assert_eq!(status_code, StatusCode::OK);
    assert_eq!(health["status"], "UP");
}

#[tokio::test]
async fn faults_are_unavailable_and_reach_nothing() {
    let smdp = Smdp::start().await;
    let client = smdp.client();
    smdp.faults(json!({"fail_next": 1})).await;
    let failed = client.download_order("d-1", None).await;
    assert!(
        matches!(&failed, Err(Es2PlusError::Unavailable(why)) if why.contains("500")),
        "{failed:?}"
    );
    smdp.faults(json!({"outage": true})).await;
    let down = client.download_order("d-1", None).await;
    assert!(matches!(&down, Err(e) if e.is_outage()), "{down:?}");
    let response = smdp.http.get(smdp.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "30");
    let ledger = smdp.ledger().await;
    assert_eq!(
        ledger["calls"],
        json!({}),
        "/_sim answers; nothing reached the SM-DP+"
    );
    assert_eq!(ledger["orders"], json!({}));

    let response = smdp
        .http
        .delete(smdp.url("/_sim/faults"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let order = client.download_order("d-1", None).await.unwrap();

    smdp.faults(json!({"timeout_next": 1})).await;
    let impatient = Es2PlusClient::new(&smdp.base, "t", Duration::from_millis(400));
    let started = Instant::now();
    let hung = impatient.confirm_order("c-1", &order.iccid, None).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        hung.unwrap_err(),
        Es2PlusError::Unavailable("no answer in time".to_owned())
    );
    assert_eq!(
        smdp.ledger().await["orders"][&order.iccid]["state"],
        "reserved"
    );

    smdp.faults(json!({"latency_ms": 300})).await;
    let started = Instant::now();
    client
        .confirm_order("c-1", &order.iccid, None)
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    let (_, faults) = Smdp::answer(
        smdp.http
            .get(smdp.url("/_sim/faults"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(faults["latency_ms"], 300);
    assert_eq!(faults["timeout_next"], 0, "spent");
}

#[tokio::test]
async fn a_lost_answer_was_executed_and_a_retry_with_the_same_call_gets_it() {
    let smdp = Smdp::start().await;
    let client = smdp.client();
    let order = client.download_order("d-1", None).await.unwrap();
    smdp.faults(json!({"lose_response_next": 1})).await;
    let lost = client.confirm_order("c-1", &order.iccid, None).await;
    assert!(matches!(&lost, Err(e) if e.is_outage()), "{lost:?}");
    let ledger = smdp.ledger().await;
    assert_eq!(ledger["orders"][&order.iccid]["state"], "released");
    let matching_id = ledger["orders"][&order.iccid]["matchingId"].clone();
    assert!(matching_id.is_string());

    let retried = client
        .confirm_order("c-1", &order.iccid, None)
        .await
        .unwrap();
    assert_eq!(
        retried.activation_code.matching_id(),
        matching_id.as_str().unwrap()
    );
    let ledger = smdp.ledger().await;
    assert_eq!(ledger["calls"]["c-1"]["seen"], 2);
    assert_eq!(ledger["orders"].as_object().unwrap().len(), 1);
}

#[tokio::test]
async fn the_smdp_address_is_configurable_and_must_be_a_host_name() {
    let smdp = Smdp::start_with(SmdpSimOptions {
        smdp_address: "rsp.operator.example".to_owned(),
        ..SmdpSimOptions::default()
    })
    .await;
    let client = smdp.client();
    let order = client.download_order("d-1", None).await.unwrap();
    let confirmed = client
        .confirm_order("c-1", &order.iccid, None)
        .await
        .unwrap();
    assert_eq!(
        confirmed.activation_code.smdp_address(),
        "rsp.operator.example"
    );
    assert_eq!(smdp.ledger().await["smdpAddress"], "rsp.operator.example");

    for bad in ["127.0.0.1", "localhost", "https://smdp.example.com"] {
        let options = SmdpSimOptions {
            smdp_address: bad.to_owned(),
            ..SmdpSimOptions::default()
        };
        let served = smdp_sim::serve_with(
            "127.0.0.1:0".parse().unwrap(),
            options,
            std::future::ready(()),
            |_| {},
        )
        .await;
        assert_eq!(
            served.unwrap_err().kind(),
            std::io::ErrorKind::InvalidInput,
            "{bad}"
        );
    }
}

#[test]
fn the_default_config_names_the_simulator() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/default.toml");
    let config = config::Config::builder()
        .add_source(config::File::from(file))
        .build()
        .unwrap();
    let settings: SmdpSettings = config.get("smdp").unwrap();
    assert_eq!(settings.url, "http://127.0.0.1:38095");
    assert!(!settings.token.is_empty());
    assert_eq!(settings.timeout(), Duration::from_secs(10));
    assert!(!settings.confirmation_code);
    assert_eq!(
        settings,
        SmdpSettings::default(),
        "the serde defaults agree"
    );
}
