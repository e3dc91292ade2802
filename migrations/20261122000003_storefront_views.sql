-- Storefront views, materialized from the compacted `baskets` and `msisdn.numbers` topics by
-- the storefront view connector. Same Row-Level Security rule as every view: a row is visible
-- only to the tenant named by the transaction's `app.tenant_id`.

CREATE TABLE baskets (
    tenant_id        text        NOT NULL,
    basket_id        text        NOT NULL,
    version          bigint      NOT NULL,
    status           text        NOT NULL CHECK (status IN ('ACTIVE', 'ABANDONED', 'EXPIRED', 'MERGED')),
    customer_id      text,
    channel          text        NOT NULL,
    -- The basket as the storefront API shows it: lines, numbers, prices, totals.
    document         jsonb       NOT NULL,
    expires_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    source_partition integer     NOT NULL,
    source_offset    bigint      NOT NULL,
    PRIMARY KEY (tenant_id, basket_id)
);
-- A signing-in customer's current basket.
CREATE INDEX baskets_by_customer ON baskets (tenant_id, customer_id, updated_at DESC)
    WHERE customer_id IS NOT NULL AND status = 'ACTIVE';

-- Pool numbers. A number belongs to one tenant only (the MSISDN processor decides that), so
-- the number alone is unique.
CREATE TABLE phone_numbers (
    tenant_id      text        NOT NULL,
    msisdn         text        NOT NULL UNIQUE CHECK (msisdn ~ '^\+[1-9][0-9]{7,14}$'),
    status         text        NOT NULL CHECK (status IN ('AVAILABLE', 'RESERVED', 'ASSIGNED')),
    basket_id      text,
    reserved_until timestamptz,
    order_id       text,
    version        bigint      NOT NULL,
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, msisdn)
);
-- Availability search by prefix and pattern.
CREATE INDEX phone_numbers_available ON phone_numbers (tenant_id, msisdn text_pattern_ops)
    WHERE status = 'AVAILABLE';

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['baskets', 'phone_numbers'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I
                USING (tenant_id = current_setting(''app.tenant_id'', true))
                WITH CHECK (tenant_id = current_setting(''app.tenant_id'', true))', t);
    END LOOP;
END $$;
