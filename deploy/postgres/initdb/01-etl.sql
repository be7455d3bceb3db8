-- Run by the postgres image on a fresh volume (docker-compose.yml mounts this folder on
-- /docker-entrypoint-initdb.d): the database the stack's pipelines load, and a read-only role for Grafana.
-- Idempotent; test/deploy/dashboards.test.ts runs it with `-v etl_database=<a fresh name>`.
\if :{?etl_database}
\else
  \set etl_database etl
\endif

SELECT format('CREATE DATABASE %I', :'etl_database')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'etl_database')\gexec

DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'grafana') THEN
    CREATE ROLE grafana LOGIN PASSWORD 'grafana';
  END IF;
END
$$;

\connect :"etl_database"
-- Tables the sinks create later (as postgres) are readable by Grafana, and nothing else is granted.
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT SELECT ON TABLES TO grafana;
