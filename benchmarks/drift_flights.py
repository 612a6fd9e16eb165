"""Drift on real data: nycflights13, reference January-March, every later month checked, policy decisions.

A gradient-boosting model of ``arr_delayed_15`` is fitted on January-March with pre-departure features
(schedule, distance, carrier, airports, and the departure airport's weather of the scheduled hour).
The reference is January-March with out-of-fold predictions (5 folds), so its quality is an honest
baseline. Each later month is scored by the model (a serving log), its ground truth joined when the
flights have landed (``arr_delay > 15``, the shipped target's rule), and the labelled month checked
against the reference: data drift per feature, prediction drift, target drift (Jensen-Shannon with a
threshold of 0.05 for the label), ROC AUC against the baseline. The policy sees the months in order,
each at the first day of the next month (when its labels are known); the reference is never
replaced, so the table shows what the policy would ask for, month after month.

Every month is also checked by Evidently's ``DataDriftPreset`` on the full frames (features and
prediction columns): the per-column verdicts must be identical. A third column repeats our check with
a stated sample of 20,000 rows per side, to show what a small bound does to borderline columns.

Run: .venv/bin/python benchmarks/drift_flights.py
Last line: BENCH drift_flights months=9 verdicts_agree=<1 or 0> sampled_agree=<months agreeing at 20k>
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FLIGHTS = REPO / "include" / "data" / "nycflights13"
NUMERIC = ["sched_dep_time", "sched_arr_time", "distance", "temp", "dewp", "humid", "wind_speed", "precip", "visib"]
CATEGORICAL = ["carrier", "origin", "dest"]
IDS = ["sched_dep_ts", "carrier", "flight"]
TARGET = "arr_delayed_15"
POLICY = {
    "drift_share": 0.5, "hysteresis": 0.1, "quality_drop": 0.03, "quality_hysteresis": 0.01,
    "trigger_columns": ["probability_1", TARGET], "cooldown": "60d", "min_new_labels": 20000,
}  # fmt: skip
MONTHS = ["", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def load():  # type: ignore[no-untyped-def]
    import pandas as pd

    flights = pd.read_parquet(FLIGHTS / "flights.parquet")
    weather = pd.read_parquet(FLIGHTS / "weather.parquet").drop(columns=["year", "month", "day", "hour"])
    return flights.merge(weather, on=["origin", "time_hour"], how="left", validate="many_to_one")


def features(frame, categories):  # type: ignore[no-untyped-def]
    import pandas as pd

    out = frame[NUMERIC].astype("float64").copy()
    for column in CATEGORICAL:
        out[column] = pd.Categorical(frame[column], categories=categories[column])
    return out


def evidently_verdicts(reference, current, numeric, categorical):  # type: ignore[no-untyped-def]
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    columns = numeric + categorical
    found = (
        Report([DataDriftPreset()], include_tests=True)
        .run(
            current_data=Dataset.from_pandas(current[columns].reset_index(drop=True), data_definition=definition),
            reference_data=Dataset.from_pandas(reference[columns].reset_index(drop=True), data_definition=definition),
        )
        .dict()
    )
    return {
        t["metric_config"]["params"]["column"]: t["status"] == "FAIL"
        for t in found["tests"]
        if t["name"].startswith("Value Drift for column")
    }


def main() -> None:
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import cross_val_predict

    from airflow_mlops.core.drift import DriftPolicy, DriftSpec, LabelSpec, compute_drift, decide, join_labels, observe

    data = load()
    quarter = data[(data["month"] <= 3) & data[TARGET].notna()].reset_index(drop=True)
    categories = {c: sorted(quarter[c].dropna().unique()) for c in CATEGORICAL}
    model = HistGradientBoostingClassifier(
        max_iter=200, learning_rate=0.1, random_state=0, categorical_features="from_dtype"
    )
    y = quarter[TARGET].astype(int)
    out_of_fold = cross_val_predict(model, features(quarter, categories), y, cv=5, method="predict_proba")[:, 1]
    model.fit(features(quarter, categories), y)
    reference = quarter[NUMERIC + CATEGORICAL + [TARGET]].copy()
    reference["probability_1"] = out_of_fold
    reference["prediction"] = (out_of_fold >= 0.5).astype("int64")

    # Jensen-Shannon's default 0.1 lets a ten-point shift of a binary label pass (0.077 in December):
    # the label gets a tighter threshold of its own.
    spec_raw = {"task": "binary", "target": TARGET, "numeric_features": NUMERIC, "categorical_features": CATEGORICAL,
                "classes": [0, 1], "per_column_threshold": {TARGET: 0.05}}  # fmt: skip
    exact, sampled = DriftSpec.from_mapping(spec_raw), DriftSpec.from_mapping({**spec_raw, "sample_size": 20000})
    policy = DriftPolicy.from_mapping(POLICY)
    rule = LabelSpec.from_mapping({"id_columns": IDS, "target": TARGET, "source": "arr_delay", "op": ">", "value": 15})
    state: dict = {}
    rows, all_agree, sampled_agree = [], True, 0
    for month in range(4, 13):
        month_rows = data[data["month"] == month].reset_index(drop=True)
        serving = month_rows[IDS + [c for c in NUMERIC + CATEGORICAL if c not in IDS]].copy()
        probability = model.predict_proba(features(serving, categories))[:, 1]
        serving["probability_1"] = probability
        serving["prediction"] = (probability >= 0.5).astype("int64")
        labelled, joined = join_labels(serving, month_rows[[*IDS, "arr_delay"]], rule)
        start = time.perf_counter()
        result = compute_drift(reference, labelled, exact)
        seconds = time.perf_counter() - start
        small = compute_drift(reference, labelled, sampled)
        ours = {c.column: c.drifted for c in (*result.features, *result.predictions)}
        theirs = evidently_verdicts(reference, labelled, [*NUMERIC, "probability_1"], [*CATEGORICAL, "prediction"])
        agree = ours == theirs
        all_agree &= agree
        small_same = [c.drifted for c in small.features] == [c.drifted for c in result.features]
        sampled_agree += small_same
        as_of = f"2013-{month + 1:02d}-01" if month < 12 else "2014-01-01"
        decision, state = decide(policy, state, observe(result, f"2013-{month:02d}", as_of, "flights/v1"))
        quality = result.quality
        assert quality is not None and result.target is not None
        probability_drift = next(c for c in result.predictions if c.column == "probability_1")
        rows.append(
            {
                "month": MONTHS[month],
                "rows": len(month_rows),
                "labelled": joined.rows_labelled,
                "cancelled": joined.rows_pending,
                "share": result.drift_share,
                "drifted": ", ".join(result.drifted_columns),
                "probability": f"{probability_drift.score:.3f}{' *' if probability_drift.drifted else ''}",
                "late": f"{quality.current_metrics['positive_rate']:.1%} "
                f"({result.target.score:.3f}{' *' if result.target.drifted else ''})",
                "auc": f"{quality.current:.3f} ({-quality.drop:+.3f})",
                "evidently": "same" if agree else "DIFFERENT",
                "sampled": "same" if small_same else f"differs ({small.drift_share:.2f})",
                "decision": decision.status + (f": {'; '.join(decision.reasons)}" if decision.reasons else ""),
                "seconds": seconds,
            }
        )
        print(f"checked {MONTHS[month]} in {seconds:.2f} s", file=sys.stderr)
    baseline = float(quality.baseline or 0.0)  # the reference's out-of-fold ROC AUC
    print(f"reference: January-March, {len(reference)} labelled flights; baseline ROC AUC {baseline:.3f}; "
          f"late arrivals {reference[TARGET].mean():.1%}")  # fmt: skip
    print(f"policy: {POLICY}")
    print()
    print(
        "| month | flights | labelled | no label | drift share | drifted features | probability_1 drift | "
        f"late (target drift) | ROC AUC (change vs {baseline:.3f}) | Evidently verdicts | sample of 20k | policy |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    keys = ("month", "rows", "labelled", "cancelled", "share", "drifted", "probability", "late", "auc", "evidently",
            "sampled", "decision")  # fmt: skip
    for r in rows:
        cells = [f"{r[k]:.2f}" if k == "share" else str(r[k]) for k in keys]
        print("| " + " | ".join(cells) + " |")
    print()
    print(f"check time per month (exact, {len(reference)} x {len(rows)} months): "
          f"median {np.median([r['seconds'] for r in rows]):.2f} s")  # fmt: skip
    print(f"BENCH drift_flights months={len(rows)} verdicts_agree={int(all_agree)} sampled_agree={sampled_agree}")


if __name__ == "__main__":
    main()
