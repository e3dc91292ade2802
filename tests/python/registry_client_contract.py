"""Contract test of the schema registry with Confluent's own Python client (confluent-kafka).

Analytics teams talk to the registry through `SchemaRegistryClient`; this script drives the
calls they make and checks every answer. It sends what the client sends, Python booleans such
as `?verbose=False` and `?normalize=False` included, and expects Confluent's answers and error
codes, so it passes against a real Confluent Schema Registry too.

    python registry_client_contract.py SUBJECT      (SCHEMA_REGISTRY_URL names the registry)

The subject must be new (the Rust test `registry_contract::confluents_python_client` passes a
unique one). Prints one line per step and exits non-zero at the first answer that is wrong.
"""

import json
import os
import sys

from confluent_kafka.schema_registry import (
    ConfigCompatibilityLevel,
    Schema,
    SchemaRegistryClient,
    SchemaRegistryError,
    ServerConfig,
)


def record(*fields):
    return json.dumps(
        {"type": "record", "name": "Thing", "namespace": "contract.python", "fields": list(fields)}
    )


V1 = Schema(record({"name": "id", "type": "string"}), "AVRO")
# A new field with a default: old data stays readable (BACKWARD compatible).
V2_DEFAULT = Schema(
    record({"name": "id", "type": "string"}, {"name": "n", "type": "int", "default": 0}), "AVRO"
)
# A new field without a default cannot read old data (BACKWARD incompatible).
V2_REQUIRED = Schema(record({"name": "id", "type": "string"}, {"name": "n", "type": "int"}), "AVRO")


def same_schema(a, b):
    return json.loads(a) == json.loads(b)


def expect(what, got, want):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")
    print(f"ok: {what}")


def expect_error(what, call, status, code):
    try:
        answer = call()
    except SchemaRegistryError as e:
        expect(f"{what}: HTTP status and error code", (e.http_status_code, e.error_code), (status, code))
        return
    raise AssertionError(f"{what}: expected the error {status}/{code}, got {answer!r}")


def main():
    url = os.environ.get("SCHEMA_REGISTRY_URL")
    if not url or len(sys.argv) != 2:
        sys.exit("usage: SCHEMA_REGISTRY_URL=http://... python registry_client_contract.py SUBJECT")
    subject = sys.argv[1]
    client = SchemaRegistryClient({"url": url})

    def sr():
        # The client caches ids and versions; every call below must reach the registry.
        client.clear_caches()
        return client

    # Register, and register again: same id.
    schema_id = sr().register_schema(subject, V1)
    expect("register answers an id", isinstance(schema_id, int) and schema_id > 0, True)
    expect("registering the same schema again", sr().register_schema(subject, V1), schema_id)

    # Look it up (?normalize=False&deleted=False) and read it back.
    found = sr().lookup_schema(subject, V1)
    expect("lookup_schema", (found.schema_id, found.version), (schema_id, 1))
    expect("get_schema", same_schema(sr().get_schema(schema_id).schema_str, V1.schema_str), True)
    latest = sr().get_latest_version(subject)
    expect("get_latest_version", (latest.subject, latest.version, latest.schema_id), (subject, 1, schema_id))
    expect("get_version", sr().get_version(subject, 1).schema_id, schema_id)
    expect("get_subjects", subject in sr().get_subjects(), True)
    expect("get_versions", sr().get_versions(subject), [1])
    expect("get_subjects_by_schema_id", subject in sr().get_subjects_by_schema_id(schema_id), True)

    # Compatibility checks: the client sends ?normalize=False&verbose=False (or verbose=True).
    expect("test_compatibility, compatible", sr().test_compatibility(subject, V2_DEFAULT), True)
    expect("test_compatibility, incompatible", sr().test_compatibility(subject, V2_REQUIRED), False)
    verbose = sr().test_compatibility(subject, V2_REQUIRED, verbose=True)
    expect("test_compatibility verbose, incompatible", verbose, False)
    every = sr().test_compatibility_all_versions(subject, V2_DEFAULT)
    expect("test_compatibility_all_versions, compatible", every, True)
    expect_error(
        "registering an incompatible schema", lambda: sr().register_schema(subject, V2_REQUIRED), 409, 409
    )
    v2_id = sr().register_schema(subject, V2_DEFAULT)
    expect("a compatible schema becomes version 2", sr().get_versions(subject), [1, 2])

    # Subject-level configuration.
    FORWARD, FULL = ConfigCompatibilityLevel.FORWARD, ConfigCompatibilityLevel.FULL
    expect_error("get_config of an unconfigured subject", lambda: sr().get_config(subject), 404, 40408)
    sr().set_config(subject, ServerConfig(compatibility=FORWARD))
    expect("get_compatibility after set_config", sr().get_compatibility(subject), "FORWARD")
    expect("get_config after set_config", sr().get_config(subject).compatibility_level, FORWARD)
    expect("set_compatibility", sr().set_compatibility(subject, "FULL"), {"compatibility": "FULL"})
    expect("delete_config answers the old level", sr().delete_config(subject).compatibility_level, FULL)
    expect_error("get_config after delete_config", lambda: sr().get_config(subject), 404, 40408)

    # Errors reach the client with Confluent's error codes.
    invalid = Schema('{"type": "record", "name": "X"}', "AVRO")
    cases = [
        ("get_version of a missing version", lambda: sr().get_version(subject, 99), 404, 40402),
        ("get_schema of a missing id", lambda: sr().get_schema(2147483000), 404, 40403),
        ("lookup_schema in a missing subject", lambda: sr().lookup_schema(subject + "-no", V1), 404, 40401),
        ("registering an invalid schema", lambda: sr().register_schema(subject, invalid), 422, 42201),
    ]
    for what, call, status, code in cases:
        expect_error(what, call, status, code)

    # Soft, then permanent deletion of a version (?deleted=True reaches the registry as `true`).
    expect("delete_version, soft", sr().delete_version(subject, 2), 2)
    expect("get_versions after it", sr().get_versions(subject), [1])
    expect("get_versions(deleted=True)", sr().get_versions(subject, deleted=True), [1, 2])
    expect("get_version(deleted=True)", sr().get_version(subject, 2, deleted=True).schema_id, v2_id)
    expect("delete_version, permanent", sr().delete_version(subject, 2, permanent=True), 2)
    expect("get_versions(deleted=True) after it", sr().get_versions(subject, deleted=True), [1])

    # Then the whole subject.
    expect("delete_subject, soft", sr().delete_subject(subject), [1])
    expect("delete_subject, permanent", sr().delete_subject(subject, permanent=True), [1])
    expect("the subject is gone", subject in sr().get_subjects(deleted=True), False)
    print("registry contract with confluent-kafka's SchemaRegistryClient: all checks passed")


if __name__ == "__main__":
    main()
