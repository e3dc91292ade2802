-- Customer identity and personal data (see connectors/src/personal_data/).
--
-- Key material never rests in plaintext: every key below is sealed (AES-256-GCM) by the key
-- above it — customer data keys by their tenant's wrapping key, tenant keys by the platform's
-- master key, which lives only in the operator's secret store. Erasing a customer deletes
-- their data key (crypto-shredding): what was sealed with it, in Kafka and everywhere else,
-- can never be opened again.

-- A tenant's keys: `session_signing` (ES256, signs its customers' session tokens; the public
-- half is published at the tenant's JWKS URL) and `data_wrapping` (wraps its customers' data
-- keys). One active key per purpose; retired signing keys stay published while tokens they
-- signed may still be alive.
CREATE TABLE tenant_keys (
    tenant_id   text        NOT NULL,
    kid         text        NOT NULL,
    purpose     text        NOT NULL CHECK (purpose IN ('session_signing', 'data_wrapping')),
    sealed_key  text        NOT NULL,
    public_jwk  jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    retired_at  timestamptz,
    PRIMARY KEY (tenant_id, kid)
);
CREATE UNIQUE INDEX tenant_keys_one_active ON tenant_keys (tenant_id, purpose)
    WHERE retired_at IS NULL;

-- One data key per customer, sealed by the tenant's wrapping key `wrapping_kid`.
CREATE TABLE customer_data_keys (
    tenant_id    text        NOT NULL,
    customer_id  text        NOT NULL,
    wrapping_kid text        NOT NULL,
    sealed_key   text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, customer_id)
);

-- Who a customer is at the tenant's identity broker: the broker's subject, as a keyed digest
-- (never the subject itself), mapped to the platform's customer id. Deleted on erasure, so
-- the person signing in again later is a new customer.
CREATE TABLE customer_accounts (
    tenant_id      text        NOT NULL,
    issuer         text        NOT NULL,
    subject_digest text        NOT NULL,
    customer_id    text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, issuer, subject_digest),
    UNIQUE (tenant_id, customer_id)
);

-- Customers whose personal data was erased (GDPR art. 17): the views show them as erased.
CREATE TABLE erased_customers (
    tenant_id   text        NOT NULL,
    customer_id text        NOT NULL,
    erased_at   timestamptz NOT NULL DEFAULT now(),
    erased_by   text        NOT NULL,
    PRIMARY KEY (tenant_id, customer_id)
);

-- Who read or changed personal data, when, for which tenant. Append-only: the serving role
-- may insert and read, never update or delete (see the trigger below).
CREATE TABLE personal_data_audit (
    tenant_id   text        NOT NULL,
    audit_id    uuid        NOT NULL,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    actor       text        NOT NULL,
    action      text        NOT NULL,
    customer_id text        NOT NULL,
    detail      text,
    PRIMARY KEY (tenant_id, audit_id)
);
CREATE INDEX personal_data_audit_by_time ON personal_data_audit (tenant_id, occurred_at DESC);

CREATE FUNCTION personal_data_audit_is_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'personal_data_audit is append-only';
END $$ LANGUAGE plpgsql;
CREATE TRIGGER personal_data_audit_append_only
    BEFORE UPDATE OR DELETE ON personal_data_audit
    FOR EACH ROW EXECUTE FUNCTION personal_data_audit_is_append_only();

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['tenant_keys', 'customer_data_keys', 'customer_accounts',
                             'erased_customers', 'personal_data_audit'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I
                USING (tenant_id = current_setting(''app.tenant_id'', true))
                WITH CHECK (tenant_id = current_setting(''app.tenant_id'', true))', t);
    END LOOP;
END $$;
