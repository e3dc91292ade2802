-- TMF637 product inventory: one product per activated subscription line, kept by the storefront
-- view connector from the orders topic (rebuilt with the order on every version) and read by
-- the customer's and the brand's subscription listings. `tcm_status` is what the TCM
-- reconciliation last found in TCM (NULL: never reconciled), kept apart so an order update
-- does not overwrite it.
CREATE TABLE products (
    tenant_id        text        NOT NULL,
    -- The TCM subscription id: the product's identity in both systems.
    product_id       text        NOT NULL,
    customer_id      text        NOT NULL,
    order_id         text        NOT NULL,
    item_id          text        NOT NULL,
    -- TMF637 ProductStatusType, as the platform knows it from the order.
    status           text        NOT NULL CHECK (status IN ('created', 'pendingActive', 'active',
                         'suspended', 'pendingTerminate', 'terminated', 'cancelled', 'aborted')),
    msisdn           text,
    iccid            text,
    start_date       date,
    binding_end_date date,
    -- The product as the APIs show it (TMF637 Product JSON).
    document         jsonb       NOT NULL,
    order_version    bigint      NOT NULL,
    tcm_status       text,
    reconciled_at    timestamptz,
    updated_at       timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, product_id)
);
CREATE INDEX products_by_customer ON products (tenant_id, customer_id, product_id);

ALTER TABLE products ENABLE ROW LEVEL SECURITY;
ALTER TABLE products FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON products
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
