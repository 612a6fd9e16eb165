-- The MLflow tracking server keeps its metadata in its own database on the same PostgreSQL server.
CREATE USER mlflow WITH PASSWORD 'mlflow';
CREATE DATABASE mlflow OWNER mlflow;
