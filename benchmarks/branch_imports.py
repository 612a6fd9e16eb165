"""What a task process does before a branch task's callable returns: import Airflow's task runner, parse the
DAG file, call its ``choose_pipelines``; prints the split and which heavy libraries got imported.

Run: .venv/bin/python benchmarks/branch_imports.py dags/continuous_training.py
(whole-process figures: time it with ``/usr/bin/time -v`` against ``python -c 'import
airflow.sdk.execution_time.task_runner'``; ``python -X importtime`` for the import tree)
"""

import runpy
import sys
import time

t0 = time.perf_counter()
import airflow.sdk.execution_time.task_runner  # noqa: E402,F401  (what every task process imports first)

t1 = time.perf_counter()
mod = runpy.run_path(sys.argv[1], run_name="dagfile")  # the task runner parses the DAG file
t2 = time.perf_counter()
mod["choose_pipelines"](params={"pipeline": "flights_delay"})
t3 = time.perf_counter()
print(f"task_runner {t1 - t0:.3f} s; DAG file {t2 - t1:.3f} s; branch callable {t3 - t2:.3f} s", file=sys.stderr)
heavy = [
    m
    for m in (
        "pandas",
        "numpy",
        "pyarrow",
        "mlflow",
        "sklearn",
        "great_expectations",
        "evidently",
        "lightgbm",
        "onnx",
        "onnxruntime",
        "duckdb",
        "sqlalchemy",
        "scipy",
    )
    if m in sys.modules
]
print("heavy modules loaded:", heavy, file=sys.stderr)
