-- Catalog views, materialized from the compacted `catalog.offerings` and `catalog.campaigns`
-- topics by the view connector, and marketing content from Contentful by the content
-- connector. Same Row-Level Security rule as `tenants`: a row is visible only to the tenant
-- named by the transaction's `app.tenant_id`.

CREATE TABLE offerings (
    tenant_id        text        NOT NULL,
    offering_id      text        NOT NULL,
    lifecycle_status text        NOT NULL CHECK (lifecycle_status IN ('DRAFT', 'ACTIVE', 'RETIRED')),
    kind             text        NOT NULL CHECK (kind IN ('PLAN', 'ADD_ON')),
    name             text        NOT NULL,
    definition       jsonb       NOT NULL,
    version          bigint      NOT NULL,
    updated_at       timestamptz NOT NULL,
    source_partition integer     NOT NULL,
    source_offset    bigint      NOT NULL,
    PRIMARY KEY (tenant_id, offering_id)
);

-- Offerings per channel: one row per placement, replaced whenever the offering changes.
CREATE TABLE offering_placements (
    tenant_id           text    NOT NULL,
    offering_id         text    NOT NULL,
    channel             text    NOT NULL,
    visible             boolean NOT NULL,
    display_name        text,
    description         text,
    sort_order          integer NOT NULL,
    monthly_price_minor bigint,
    PRIMARY KEY (tenant_id, channel, offering_id),
    FOREIGN KEY (tenant_id, offering_id) REFERENCES offerings ON DELETE CASCADE
);

CREATE TABLE campaigns (
    tenant_id        text        NOT NULL,
    campaign_id      text        NOT NULL,
    status           text        NOT NULL CHECK (status IN ('ACTIVE', 'ENDED')),
    name             text        NOT NULL,
    priority         integer     NOT NULL,
    valid_from       timestamptz NOT NULL,
    valid_until      timestamptz,
    definition       jsonb       NOT NULL,
    version          bigint      NOT NULL,
    updated_at       timestamptz NOT NULL,
    source_partition integer     NOT NULL,
    source_offset    bigint      NOT NULL,
    PRIMARY KEY (tenant_id, campaign_id)
);

-- Localised marketing fields from the tenant's Contentful space, by entry and locale.
CREATE TABLE offering_content (
    tenant_id   text        NOT NULL,
    entry_id    text        NOT NULL,
    locale      text        NOT NULL,
    offering_id text        NOT NULL,
    fields      jsonb       NOT NULL,
    revision    integer     NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, entry_id, locale)
);
CREATE INDEX offering_content_by_offering ON offering_content (tenant_id, offering_id, locale);

-- Where each tenant's content sync stands: the Sync API token to continue from.
CREATE TABLE content_sync_state (
    tenant_id   text        PRIMARY KEY,
    space_id    text        NOT NULL,
    environment text        NOT NULL,
    sync_token  text        NOT NULL,
    synced_at   timestamptz NOT NULL
);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['offerings', 'offering_placements', 'campaigns', 'offering_content', 'content_sync_state'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I
                USING (tenant_id = current_setting(''app.tenant_id'', true))
                WITH CHECK (tenant_id = current_setting(''app.tenant_id'', true))', t);
    END LOOP;
END $$;
