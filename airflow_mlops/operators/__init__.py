"""Airflow operators of airflow-mlops."""
