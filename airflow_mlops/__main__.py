"""``python -m airflow_mlops <command>``: the same as the ``airflow-mlops`` console script."""

import sys

from airflow_mlops.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
