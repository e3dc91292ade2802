-- Orders, materialized from the compacted `orders` topic by the storefront view connector,
-- under the same Row-Level Security rule as every view. A checked-out basket keeps its row
-- with the new status.

ALTER TABLE baskets DROP CONSTRAINT baskets_status_check;
ALTER TABLE baskets ADD CONSTRAINT baskets_status_check
    CHECK (status IN ('ACTIVE', 'ABANDONED', 'EXPIRED', 'MERGED', 'CHECKED_OUT'));

CREATE TABLE orders (
    tenant_id        text        NOT NULL,
    order_id         text        NOT NULL,
    version          bigint      NOT NULL,
    -- TMF622 ProductOrderStateType, spelled as TMF622 does.
    state            text        NOT NULL CHECK (state IN ('acknowledged', 'rejected', 'pending',
                         'held', 'inProgress', 'cancelled', 'completed', 'failed', 'partial',
                         'assessingCancellation', 'pendingCancellation')),
    customer_id      text,
    -- The order as the APIs show it (TMF622 ProductOrder JSON).
    document         jsonb       NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, order_id)
);
-- A customer's orders, newest first; the brand's orders by state and date.
CREATE INDEX orders_by_customer ON orders (tenant_id, customer_id, created_at DESC);
CREATE INDEX orders_by_state ON orders (tenant_id, state, created_at DESC);

-- One row per item (plan line or add-on), for reporting without parsing documents.
CREATE TABLE order_items (
    tenant_id   text    NOT NULL,
    order_id    text    NOT NULL,
    item_id     text    NOT NULL,
    parent_id   text,
    offering_id text    NOT NULL,
    state       text    NOT NULL,
    quantity    integer NOT NULL,
    msisdn      text,
    PRIMARY KEY (tenant_id, order_id, item_id),
    FOREIGN KEY (tenant_id, order_id) REFERENCES orders (tenant_id, order_id)
);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['orders', 'order_items'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I
                USING (tenant_id = current_setting(''app.tenant_id'', true))
                WITH CHECK (tenant_id = current_setting(''app.tenant_id'', true))', t);
    END LOOP;
END $$;
