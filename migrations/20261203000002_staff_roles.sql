-- Brand staff: who may do what at one tenant. A staff member signs in at the tenant's broker;
-- the broker's subject is kept only as a keyed digest (`staff_id`), and a brand admin (or a
-- platform operator) grants roles to that id.
CREATE TABLE staff_roles (
    tenant_id   text        NOT NULL,
    staff_id    text        NOT NULL,
    roles       text[]      NOT NULL CHECK (cardinality(roles) > 0),
    granted_by  text        NOT NULL,
    granted_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, staff_id)
);

ALTER TABLE staff_roles ENABLE ROW LEVEL SECURITY;
ALTER TABLE staff_roles FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON staff_roles
    USING (tenant_id = current_setting('app.tenant_id', true))
    WITH CHECK (tenant_id = current_setting('app.tenant_id', true));
