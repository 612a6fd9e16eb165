"""Airflow triggers of airflow-mlops."""
