"""Command-line tools: ``airflow-mlops <command>`` or ``python -m airflow_mlops <command>`` (see ``main``)."""
