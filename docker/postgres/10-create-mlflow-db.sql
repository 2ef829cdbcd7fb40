-- Runs once, when the postgres volume is first initialised (docker-entrypoint-initdb.d).
-- The server holds two databases: `airflow` (POSTGRES_DB, created by the image) for
-- Airflow's metadata, and this one for MLflow's runs and model registry. They cannot share
-- one: both migrate their schema with alembic and track it in a table of the same name.
CREATE DATABASE mlflow;
