"""Helpers that list the package's modules and check what importing them drags in."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "airflow_mlops"
HEAVY = (
    "pandas", "sklearn", "lightgbm", "great_expectations", "evidently",
    "mlflow", "onnxruntime", "skl2onnx", "onnxmltools",
)  # fmt: skip
AIRFLOW_LAYERS = ("hooks", "operators", "sensors", "triggers", "links", "plugins")


def module_names(subpackage: str, root: Path = REPO) -> list[str]:
    base = root / "airflow_mlops" / subpackage
    return sorted(
        ".".join(path.relative_to(root).with_suffix("").parts)
        for path in base.rglob("*.py")
        if path.name != "__init__.py"
    )


def dag_files(root: Path = REPO) -> list[Path]:
    return sorted(p for p in (root / "dags").glob("*.py") if not p.name.startswith("_"))


_HEAVY_PROBE = r"""
import importlib, importlib.util, json, sys
heavy = tuple(sys.argv[1].split(","))
offenders = {}
for target in sys.argv[2:]:
    before = set(sys.modules)
    if target.endswith(".py"):
        spec = importlib.util.spec_from_file_location("dagfile_" + str(abs(hash(target))), target)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        importlib.import_module(target)
    loaded = sorted({m.split(".")[0] for m in set(sys.modules) - before} & set(heavy))
    if loaded:
        offenders[target] = loaded
print("RESULT " + json.dumps(offenders))
"""


def heavy_imports(targets: list[str], cwd: Path = REPO) -> dict[str, list[str]]:
    """Import each target (module name or .py path) in a fresh process; map offenders to heavy libs.

    Targets are imported one after another in one process, and the heavy libraries that appear in
    ``sys.modules`` right after each import are charged to that target.
    """
    proc = subprocess.run(
        [sys.executable, "-c", _HEAVY_PROBE, ",".join(HEAVY), *targets],
        capture_output=True, text=True, cwd=cwd, timeout=600,
    )  # fmt: skip
    if proc.returncode != 0:
        raise AssertionError(f"importing {targets} failed:\n{proc.stderr[-4000:]}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return dict(json.loads(line[len("RESULT ") :]))


_BLOCKED_PROBE = r"""
import importlib, sys
class BlockAirflow:
    def find_spec(self, name, path=None, target=None):
        if name == "airflow" or name.startswith("airflow."):
            raise ImportError(f"core must not import {name}")
        return None
sys.meta_path.insert(0, BlockAirflow())
failed = []
for target in sys.argv[1:]:
    try:
        importlib.import_module(target)
    except ImportError as exc:
        failed.append(f"{target}: {exc}")
print("\n".join(failed))
sys.exit(1 if failed else 0)
"""


def import_without_airflow(targets: list[str], cwd: Path = REPO) -> list[str]:
    """Import each target with ``airflow`` blocked; return the failures (empty when all import)."""
    proc = subprocess.run(
        [sys.executable, "-c", _BLOCKED_PROBE, *targets], capture_output=True, text=True, cwd=cwd, timeout=600
    )
    if proc.returncode not in (0, 1):
        raise AssertionError(proc.stderr[-4000:])
    return [line for line in proc.stdout.splitlines() if line.strip()]
