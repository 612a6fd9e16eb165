"""Apache Airflow 3 provider for the whole life of a tabular ML model."""

__version__ = "0.1.0"
