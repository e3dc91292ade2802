//! Contract tests of the schema registry API. They take the registry's URL from
//! `SCHEMA_REGISTRY_URL`, so the same tests run against the stand-in and against a real
//! Confluent Schema Registry. They only touch subjects they create, and subject-level
//! configuration, never the global config, so they run in parallel on a shared registry.

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tcom_tests::{stack, unique};

const CT: &str = "application/vnd.schemaregistry.v1+json";

struct Registry {
    url: String,
    http: Client,
}

impl Registry {
    fn new() -> Self {
        Self {
            url: stack().registry_url.trim_end_matches('/').to_owned(),
            http: Client::builder().no_proxy().build().unwrap(),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let body = body.map(|b| b.to_string());
        let (status, _, value) = self.send(method, path, body.as_deref()).await;
        (status, value)
    }

    /// Sends a body as it is (valid JSON or not) and answers the status, the content type
    /// and the body (JSON when it parses, a string otherwise).
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&str>,
    ) -> (StatusCode, String, Value) {
        let mut request = self.http.request(method, format!("{}{}", self.url, path));
        if let Some(body) = body {
            request = request.header("content-type", CT).body(body.to_owned());
        }
        let response = request.send().await.expect("registry reachable");
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap_or_default().to_owned())
            .unwrap_or_default();
        let text = response.text().await.unwrap();
        (
            status,
            content_type,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::DELETE, path, None).await
    }

    async fn register(&self, subject: &str, schema: &str) -> (StatusCode, Value) {
        self.post(
            &format!("/subjects/{subject}/versions"),
            json!({"schema": schema}),
        )
        .await
    }
}

fn record(fields: Value) -> String {
    json!({"type": "record", "name": "Thing", "namespace": "contract.test", "fields": fields})
        .to_string()
}

fn v1() -> String {
    record(json!([{"name": "id", "type": "string"}]))
}

fn v2_with_default() -> String {
    record(json!([{"name": "id", "type": "string"}, {"name": "n", "type": "int", "default": 0}]))
}

fn v2_required() -> String {
    record(json!([{"name": "id", "type": "string"}, {"name": "n", "type": "int"}]))
}

fn error_code(body: &Value) -> i64 {
    body["error_code"]
        .as_i64()
        .unwrap_or_else(|| panic!("no error_code in {body}"))
}

#[tokio::test]
async fn register_lookup_and_read_back() {
    let r = Registry::new();
    let subject = unique("contract-value");

    let (status, body) = r.register(&subject, &v1()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = body["id"].as_i64().unwrap();

    // Registering the same schema again, whitespace aside, answers the same id.
    let spaced =
        serde_json::to_string_pretty(&serde_json::from_str::<Value>(&v1()).unwrap()).unwrap();
    let (_, again) = r.register(&subject, &spaced).await;
    assert_eq!(again["id"].as_i64(), Some(id));

    let (status, versions) = r.get(&format!("/subjects/{subject}/versions")).await;
    assert_eq!((status, versions), (StatusCode::OK, json!([1])));

    let (_, latest) = r.get(&format!("/subjects/{subject}/versions/latest")).await;
    assert_eq!(latest["subject"], json!(subject));
    assert_eq!(latest["version"], json!(1));
    assert_eq!(latest["id"].as_i64(), Some(id));
    let stored: Value = serde_json::from_str(latest["schema"].as_str().unwrap()).unwrap();
    assert_eq!(stored, serde_json::from_str::<Value>(&v1()).unwrap());

    let (status, by_id) = r.get(&format!("/schemas/ids/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_str::<Value>(by_id["schema"].as_str().unwrap()).unwrap(),
        stored
    );

    let (status, found) = r
        .post(&format!("/subjects/{subject}"), json!({"schema": v1()}))
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["version"], json!(1));

    let (_, subjects) = r.get("/subjects").await;
    assert!(subjects.as_array().unwrap().contains(&json!(subject)));

    let (_, usages) = r.get(&format!("/schemas/ids/{id}/versions")).await;
    assert!(
        usages
            .as_array()
            .unwrap()
            .contains(&json!({"subject": subject, "version": 1}))
    );
}

#[tokio::test]
async fn an_incompatible_schema_is_refused_with_409_and_confluents_body() {
    let r = Registry::new();
    let subject = unique("contract-value");
    r.register(&subject, &v1()).await;

    // Default level BACKWARD: a new required field cannot read old data.
    let (status, body) = r.register(&subject, &v2_required()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), 409);
    assert!(
        body["message"].as_str().unwrap().contains("incompatible"),
        "{body}"
    );

    // Nothing was written.
    let (_, versions) = r.get(&format!("/subjects/{subject}/versions")).await;
    assert_eq!(versions, json!([1]));

    // A field with a default is fine and becomes version 2.
    let (status, _) = r.register(&subject, &v2_with_default()).await;
    assert_eq!(status, StatusCode::OK);
    let (_, versions) = r.get(&format!("/subjects/{subject}/versions")).await;
    assert_eq!(versions, json!([1, 2]));
}

#[tokio::test]
async fn compatibility_endpoint_answers_without_registering() {
    let r = Registry::new();
    let subject = unique("contract-value");
    r.register(&subject, &v1()).await;

    let (status, ok) = r
        .post(
            &format!("/compatibility/subjects/{subject}/versions/latest"),
            json!({"schema": v2_with_default()}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ok["is_compatible"], json!(true));

    let (_, bad) = r
        .post(
            &format!("/compatibility/subjects/{subject}/versions/latest?verbose=true"),
            json!({"schema": v2_required()}),
        )
        .await;
    assert_eq!(bad["is_compatible"], json!(false));
    assert!(!bad["messages"].as_array().unwrap().is_empty(), "{bad}");

    let (_, versions) = r.get(&format!("/subjects/{subject}/versions")).await;
    assert_eq!(versions, json!([1]));
}

#[tokio::test]
async fn subject_config_changes_the_rules() {
    let r = Registry::new();
    let subject = unique("contract-value");
    r.register(&subject, &v1()).await;

    let (status, body) = r.get(&format!("/config/{subject}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), 40408);
    let (_, fallback) = r
        .get(&format!("/config/{subject}?defaultToGlobal=true"))
        .await;
    assert!(fallback["compatibilityLevel"].is_string());

    let (status, body) = r
        .put(
            &format!("/config/{subject}"),
            json!({"compatibility": "FORWARD"}),
        )
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"compatibility": "FORWARD"}))
    );
    let (_, body) = r.get(&format!("/config/{subject}")).await;
    assert_eq!(body, json!({"compatibilityLevel": "FORWARD"}));

    // FORWARD: old readers must read new data. A new required field is fine for them...
    let (status, _) = r.register(&subject, &v2_required()).await;
    assert_eq!(status, StatusCode::OK);
    // ...but dropping `id` (no default in the old reader) is not.
    let dropped = record(json!([{"name": "n", "type": "int"}]));
    let (status, body) = r.register(&subject, &dropped).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    let (status, body) = r
        .put(
            &format!("/config/{subject}"),
            json!({"compatibility": "SIDEWAYS"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(&body), 42203);
}

#[tokio::test]
async fn transitive_levels_check_every_version() {
    let r = Registry::new();
    let subject = unique("contract-value");
    r.put(
        &format!("/config/{subject}"),
        json!({"compatibility": "BACKWARD_TRANSITIVE"}),
    )
    .await;
    r.register(&subject, &record(json!([{"name": "a", "type": "string"}])))
        .await;
    let (status, _) = r
        .register(
            &subject,
            &record(json!([{"name": "b", "type": "int", "default": 0}])),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // Readable against v2 alone, but `a` as int cannot read v1's string `a`.
    let v3 = record(
        json!([{"name": "b", "type": "int", "default": 0}, {"name": "a", "type": "int", "default": 1}]),
    );
    let (status, body) = r.register(&subject, &v3).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    r.put(
        &format!("/config/{subject}"),
        json!({"compatibility": "BACKWARD"}),
    )
    .await;
    let (status, body) = r.register(&subject, &v3).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn not_found_and_invalid_input_use_confluents_error_codes() {
    let r = Registry::new();
    let missing = unique("missing-value");
    let subject = unique("contract-value");
    r.register(&subject, &v1()).await;

    let cases = [
        (
            r.get(&format!("/subjects/{missing}/versions")).await,
            StatusCode::NOT_FOUND,
            40401,
        ),
        (
            r.get(&format!("/subjects/{subject}/versions/99")).await,
            StatusCode::NOT_FOUND,
            40402,
        ),
        (
            r.get("/schemas/ids/2147483000").await,
            StatusCode::NOT_FOUND,
            40403,
        ),
        (
            r.post(
                &format!("/subjects/{subject}"),
                json!({"schema": v2_required()}),
            )
            .await,
            StatusCode::NOT_FOUND,
            40403,
        ),
        (
            r.register(&subject, "{not json").await,
            StatusCode::UNPROCESSABLE_ENTITY,
            42201,
        ),
        (
            r.register(&subject, r#"{"type":"record","name":"X"}"#)
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            42201,
        ),
        (
            r.get(&format!("/subjects/{subject}/versions/zero")).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            42202,
        ),
    ];
    for (i, ((status, body), want_status, want_code)) in cases.into_iter().enumerate() {
        assert_eq!(status, want_status, "case {i}: {body}");
        assert_eq!(error_code(&body), want_code, "case {i}: {body}");
    }
}

#[tokio::test]
async fn soft_then_permanent_deletion() {
    let r = Registry::new();
    let subject = unique("contract-value");
    r.register(&subject, &v1()).await;
    r.register(&subject, &v2_with_default()).await;

    let (status, body) = r
        .delete(&format!("/subjects/{subject}?permanent=true"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), 40405);

    let (status, body) = r.delete(&format!("/subjects/{subject}")).await;
    assert_eq!((status, body), (StatusCode::OK, json!([1, 2])));
    let (status, body) = r.get(&format!("/subjects/{subject}/versions")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), 40401);
    let (_, listed) = r.get("/subjects?deleted=true").await;
    assert!(listed.as_array().unwrap().contains(&json!(subject)));

    let (status, _) = r
        .delete(&format!("/subjects/{subject}?permanent=true"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, listed) = r.get("/subjects?deleted=true").await;
    assert!(!listed.as_array().unwrap().contains(&json!(subject)));
}

/// Confluent's registry reads boolean query parameters as Java's `Boolean.parseBoolean` does:
/// `true` in any letter case is true, anything else false. Confluent's Python client sends
/// Python's `False`/`True` (`?verbose=False&normalize=False`, `?deleted=False`).
#[tokio::test]
async fn boolean_query_parameters_are_read_as_confluent_reads_them() {
    let r = Registry::new();
    let subject = unique("contract-value");
    let (status, body) = r
        .post(
            &format!("/subjects/{subject}/versions?normalize=False"),
            json!({"schema": v1()}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    r.register(&subject, &v2_with_default()).await;

    // `permanent=False` is a soft delete...
    let (status, body) = r
        .delete(&format!("/subjects/{subject}/versions/2?permanent=False"))
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!(2)));
    for (query, want) in [
        ("deleted=False", json!([1])),
        ("deleted=yes", json!([1])),
        ("deleted=True", json!([1, 2])),
        ("deleted=TRUE", json!([1, 2])),
        ("deleted=true&deleted=False", json!([1, 2])),
    ] {
        let (status, body) = r
            .get(&format!("/subjects/{subject}/versions?{query}"))
            .await;
        assert_eq!((status, &body), (StatusCode::OK, &want), "?{query}");
    }
    let (status, body) = r
        .get(&format!("/subjects/{subject}/versions/2?deleted=True"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["version"], json!(2));
    let (status, body) = r.get("/subjects?deleted=False&deleted_only=False").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.as_array().unwrap().contains(&json!(subject)));

    // ...and `permanent=True` a permanent one.
    let (status, body) = r
        .delete(&format!("/subjects/{subject}/versions/2?permanent=True"))
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!(2)));
    let (_, body) = r
        .get(&format!("/subjects/{subject}/versions?deleted=true"))
        .await;
    assert_eq!(body, json!([1]));

    // Compatibility checks as the Python client sends them.
    let check = format!("/compatibility/subjects/{subject}/versions/latest");
    let (status, body) = r
        .post(
            &format!("{check}?normalize=False&verbose=False"),
            json!({"schema": v2_with_default()}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["is_compatible"], json!(true));
    let (status, quiet) = r
        .post(
            &format!("{check}?normalize=False&verbose=False"),
            json!({"schema": v2_required()}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{quiet}");
    assert_eq!(quiet["is_compatible"], json!(false));
    assert!(
        quiet["messages"].as_array().is_none_or(Vec::is_empty),
        "verbose=False gives no messages: {quiet}"
    );
    let (status, verbose) = r
        .post(
            &format!("/compatibility/subjects/{subject}/versions?normalize=False&verbose=True"),
            json!({"schema": v2_required()}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{verbose}");
    assert_eq!(verbose["is_compatible"], json!(false));
    assert!(
        !verbose["messages"].as_array().unwrap().is_empty(),
        "verbose=True says why: {verbose}"
    );

    let (status, body) = r
        .get(&format!("/config/{subject}?defaultToGlobal=True"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["compatibilityLevel"].is_string(), "{body}");
}

/// Every error is Confluent's JSON with Confluent's content type, also those no handler of
/// the registry answers: a body that is not JSON, an unknown route, a wrong method.
#[tokio::test]
async fn every_error_is_confluents_json() {
    use reqwest::Method;
    let r = Registry::new();
    let subject = unique("contract-value");
    r.register(&subject, &v1()).await;

    let cases = [
        (
            "a body that is not JSON",
            r.send(
                Method::POST,
                &format!("/subjects/{subject}/versions"),
                Some("{not json"),
            )
            .await,
            Some(StatusCode::BAD_REQUEST),
        ),
        (
            "a compatibility check with a body that is not JSON",
            r.send(
                Method::POST,
                &format!("/compatibility/subjects/{subject}/versions/latest?verbose=False"),
                Some("{\"schema\": "),
            )
            .await,
            Some(StatusCode::BAD_REQUEST),
        ),
        (
            "an unknown route",
            r.send(Method::GET, "/no/such/route", None).await,
            Some(StatusCode::NOT_FOUND),
        ),
        (
            "a wrong method",
            r.send(
                Method::PATCH,
                &format!("/subjects/{subject}/versions"),
                None,
            )
            .await,
            Some(StatusCode::METHOD_NOT_ALLOWED),
        ),
        // Registries differ in what they make of a path that is not UTF-8 (a missing
        // subject, or a bad request), but the answer is an error in Confluent's shape.
        (
            "a path that is not UTF-8",
            r.send(Method::GET, "/subjects/%FF%FE/versions", None).await,
            None,
        ),
    ];
    for (what, (status, content_type, body), want_status) in cases {
        if let Some(want) = want_status {
            assert_eq!(status, want, "{what}: {body}");
        }
        assert!(status.is_client_error(), "{what}: status {status}, {body}");
        assert_eq!(content_type, CT, "{what}: {body}");
        assert!(body["message"].is_string(), "{what}: {body}");
        let code = error_code(&body);
        if want_status.is_some() {
            // Confluent answers the errors no resource raises with the status as the code.
            assert_eq!(code, i64::from(status.as_u16()), "{what}: {body}");
        }
    }
}

/// Confluent's own Python client (confluent-kafka's `SchemaRegistryClient`) against the
/// registry at `SCHEMA_REGISTRY_URL`: `tests/python/registry_client_contract.py`, run with the
/// virtualenv's python that `scripts/stack up` creates (`TCOM_PYTHON`, in `.stack/env`).
#[test]
fn confluents_python_client() {
    let python = std::env::var("TCOM_PYTHON").unwrap_or_else(|_| {
        panic!(
            "TCOM_PYTHON is not set: this test runs Confluent's Python client from the virtualenv \
             that `scripts/stack up` creates (.stack/python). Run `scripts/test`, or \
             `scripts/stack up` and `source .stack/env` before `cargo test`."
        )
    });
    assert!(
        std::path::Path::new(&python).is_file(),
        "TCOM_PYTHON={python} does not exist: run `scripts/stack up` to create the virtualenv \
         with confluent-kafka, then `source .stack/env`."
    );
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/python/registry_client_contract.py"
    );
    let output = std::process::Command::new(&python)
        .arg(script)
        .arg(unique("python-client-value"))
        .env("SCHEMA_REGISTRY_URL", &stack().registry_url)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .output()
        .unwrap_or_else(|e| panic!("running {python} {script}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed ({}) against {}:\n{stdout}\n{stderr}\n(No module named \
         'confluent_kafka'? Run `scripts/stack up`: it installs the pinned client into \
         .stack/python.)",
        output.status,
        stack().registry_url
    );
    assert!(stdout.contains("all checks passed"), "{stdout}\n{stderr}");
}
