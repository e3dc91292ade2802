-- The role the platform connects as: may create databases (the tests make one each), and is
-- subject to Row-Level Security (neither SUPERUSER nor BYPASSRLS). Used by docker-compose.yml;
-- scripts/stack creates the same role for its own cluster.
CREATE ROLE tcom LOGIN PASSWORD 'tcom' CREATEDB NOSUPERUSER NOBYPASSRLS;
CREATE DATABASE tcom OWNER tcom;
