"""Airflow links of airflow-mlops."""
