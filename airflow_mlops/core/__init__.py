"""Pure-Python ML logic. Never imports airflow."""
