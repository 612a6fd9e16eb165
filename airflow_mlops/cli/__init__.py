"""Command-line tools: python -m airflow_mlops <command>."""
