-- Tenants view, materialized from the compacted `tenants` topic by the tenant-view connector.
--
-- Row-Level Security: every tenant-scoped table is readable and writable only for the tenant
-- named by the transaction-local setting `app.tenant_id` (set with
-- `SELECT set_config('app.tenant_id', $1, true)`). Without the setting a query sees nothing,
-- so a forgotten filter cannot leak another brand's rows. FORCE applies the policy to the
-- table owner too, which is the role the platform connects as.

CREATE TABLE tenants (
    tenant_id       text        PRIMARY KEY,
    name            text        NOT NULL,
    status          text        NOT NULL CHECK (status IN ('ACTIVE', 'SUSPENDED')),
    domains         text[]      NOT NULL,
    default_locale  text        NOT NULL,
    locales         text[]      NOT NULL,
    currency        char(3)     NOT NULL,
    country         char(2)     NOT NULL,
    settings        jsonb       NOT NULL,
    version         bigint      NOT NULL,
    updated_at      timestamptz NOT NULL,
    -- Where in the topic this row comes from: lets an operator see how fresh the view is.
    source_partition integer    NOT NULL,
    source_offset    bigint     NOT NULL
);

ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;

CREATE POLICY tenant_isolation ON tenants
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
