"""The model gate: a candidate against the champion on the same evaluation rows, decided by a policy.

Both models are ONNX graphs run through :class:`~airflow_mlops.core.onnx_model.OnnxModel`, exactly as
scoring will run them, on the same rows (the candidate's test split, or a named evaluation snapshot).
The policy's checks:

- **floors**: absolute bounds per metric (a ceiling for metrics where lower is better);
- **non-regression**: the candidate is not worse than the champion by more than a tolerance;
- **bootstrap** (optional): the same, with 95% (configurable) confidence, by a seeded paired bootstrap;
- **slices**: per-slice floors (e.g. per origin airport) and the largest gap between slices;
- **baseline**: a simple model cross-fitted on the evaluation rows (class prior, mean, or a small
  linear model) must not beat the candidate;
- **parity**: ONNX outputs against the native model when one is given, else the parity the training
  run logged;
- **budgets**: scoring latency per 1,000 rows and model size, measured by loading the ONNX bytes in
  ONNX Runtime.

With no champion (first run) only the absolute checks apply; ``first_run: reject`` refuses instead. A
``force`` override passes a rejected candidate and is recorded as such: the failed checks stay in the
decision. The decision is a frozen value; :func:`write_evidence` saves it with a model card.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, cast

from airflow_mlops.core.contracts import KIND_EVIDENCE
from airflow_mlops.core.errors import DataError, SpecError
from airflow_mlops.core.gating import metrics as gm
from airflow_mlops.core.gating.policy import GatePolicy, SlicePolicy
from airflow_mlops.core.onnx_model import OnnxInput, OnnxModel, inputs_from_spec

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from airflow_mlops.core.storage import StorageRoot

Status = Literal["passed", "failed", "skipped"]
Verdict = Literal["passed", "rejected", "forced"]
Scalar = float | int | str | bool | None
NativePredict = Callable[["pd.DataFrame"], "np.ndarray"]

DECISION_FILE = "decision.json"
CARD_MARKDOWN_FILE = "model_card.md"
CARD_HTML_FILE = "model_card.html"
MISSING_SLICE = "<missing>"


# -- results ----------------------------------------------------------------------------------------
def _clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities become None, numpy scalars become Python numbers."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


@dataclass(frozen=True)
class Check:
    """One check of the gate: what was observed, the bound it was held to, and the verdict."""

    name: str
    status: Status
    observed: Scalar
    threshold: Scalar
    message: str

    @property
    def passed(self) -> bool:
        return self.status != "failed"

    def to_dict(self) -> dict[str, Any]:
        return cast(
            dict[str, Any],
            _clean(
                {
                    "name": self.name,
                    "passed": self.passed,
                    "status": self.status,
                    "observed": self.observed,
                    "threshold": self.threshold,
                    "message": self.message,
                }
            ),
        )


@dataclass(frozen=True)
class ModelUnderTest:
    """A model the gate evaluates: ONNX bytes plus the training spec artifact that describes them.

    :param role: ``candidate`` or ``champion``.
    :param onnx_bytes: the exported model.
    :param spec: the training spec artifact (task, target, classes, onnx_inputs ...).
    :param run_id: the MLflow run that produced it.
    :param version: its registered version (champion).
    :param expected_sha256: the recorded sha256; the bytes are refused when they differ.
    :param native_predict: the native model's prediction function for the parity check (probabilities
        ``[n, n_classes]`` for classifiers, values for regressors), when the native model is available.
    :param logged_parity: the ONNX parity the training run measured (in the training stem's measure).
    :param training_sample: a sample of the rows the model was trained on, with the target (the run's
        reference artifact); the baseline learns from it.
    """

    role: Literal["candidate", "champion"]
    onnx_bytes: bytes
    spec: Mapping[str, Any]
    run_id: str | None = None
    version: str | None = None
    expected_sha256: str | None = None
    native_predict: NativePredict | None = field(default=None, compare=False, repr=False)
    logged_parity: float | None = None
    training_sample: pd.DataFrame | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict with everything it rests on.

    ``passed`` is what downstream acts on; it is true when every check passed, or when ``forced``.
    ``verdict`` spells out which (``passed``, ``rejected``, ``forced``); a forced decision keeps its
    failed checks in ``reasons``.
    """

    passed: bool
    verdict: Verdict
    forced: bool
    force_reason: str | None
    first_run: bool
    reasons: tuple[Check, ...]
    candidate: dict[str, Any]
    champion: dict[str, Any] | None
    candidate_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    baseline: dict[str, Any] | None
    slices: list[dict[str, Any]]
    parity: dict[str, Any]
    latency: dict[str, Any]
    bootstrap: list[dict[str, Any]]
    data: dict[str, Any]
    policy: dict[str, Any]
    task: str
    primary_metric: str
    created_at: str
    evidence_uri: str = ""

    @property
    def failed_checks(self) -> list[Check]:
        return [c for c in self.reasons if not c.passed]

    def summary(self) -> str:
        """One line: the verdict, the primary metric of both models, the failed checks."""
        primary = self.primary_metric
        candidate = _fmt(self.candidate_metrics.get(primary))
        champion = "none" if self.champion_metrics is None else _fmt(self.champion_metrics.get(primary))
        failed = ", ".join(c.name for c in self.failed_checks) or "none"
        return (
            f"{self.verdict.upper()}: {primary} candidate {candidate} vs champion {champion}; failed checks: {failed}"
        )

    def to_dict(self) -> dict[str, Any]:
        payload = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        payload["reasons"] = [c.to_dict() for c in self.reasons]
        return cast(dict[str, Any], _clean(payload))


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


# -- data -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvaluationData:
    """Rows both models are scored on, with the encoded truth."""

    frame: pd.DataFrame
    y: np.ndarray
    info: dict[str, Any]


def read_evaluation_frame(storage: StorageRoot, uri: str) -> tuple[pd.DataFrame, str]:
    """Read a Parquet (file or folder of parts) or CSV evaluation set from the storage root.

    :return: the frame and a sha256 of the content (of the file, or of the parts' hashes in order).
    :raises SourceNotFoundError: nothing at ``uri``.
    :raises DataError: the file cannot be read as Parquet or CSV.
    """
    import hashlib

    import pandas as pd
    import pyarrow.csv as pacsv
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    from airflow_mlops.core.errors import SourceNotFoundError

    kind = storage.filesystem.get_file_info(storage.fs_path(uri)).type
    if kind == pafs.FileType.NotFound:
        raise SourceNotFoundError(f"No evaluation data at {uri!r}.")
    files = storage.list_files(uri) if kind == pafs.FileType.Directory else [uri]
    if not files:
        raise SourceNotFoundError(f"The evaluation data folder {uri!r} holds no file.")
    digest = (
        storage.sha256(files[0])
        if len(files) == 1
        else hashlib.sha256("".join(storage.sha256(f) for f in files).encode()).hexdigest()
    )
    frames = []
    for part in files:
        try:
            with storage.filesystem.open_input_file(storage.fs_path(part)) as handle:
                table = pacsv.read_csv(handle) if part.endswith(".csv") else pq.read_table(handle)
        except (OSError, ValueError) as exc:  # pyarrow raises ArrowInvalid (a ValueError) on corrupt files
            raise DataError(f"The evaluation data {part!r} could not be read as Parquet or CSV: {exc}") from exc
        frames.append(table.to_pandas())
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return frame, digest


def _label_key(value: Any) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "item") and not isinstance(value, str):
        return _label_key(value.item())
    return str(value)


def prepare_data(
    frame: pd.DataFrame, spec: Mapping[str, Any], *, max_rows: int, seed: int, uri: str = "", sha256: str = ""
) -> EvaluationData:
    """Drop rows without a label, sample down to ``max_rows`` (seeded), encode the truth.

    :raises DataError: the target column is missing, no labelled row is left, or a label is not one
        of the model's classes.
    """
    import numpy as np

    task, target, classes = _task_of(spec)
    if target not in frame.columns:
        raise DataError(
            f"The evaluation data has no target column {target!r}. Columns present: {sorted(map(str, frame.columns))}."
        )
    total = len(frame)
    labelled = frame[frame[target].notna()]
    if labelled.empty:
        raise DataError(f"The evaluation data has no row with a value in the target column {target!r} ({total} rows).")
    sampled = len(labelled) > max_rows
    if sampled:
        labelled = labelled.sample(n=max_rows, random_state=seed)
    labelled = labelled.reset_index(drop=True)
    info: dict[str, Any] = {
        "uri": uri,
        "sha256": sha256,
        "rows": len(labelled),
        "rows_total": total,
        "rows_without_label": int(total - int(frame[target].notna().sum())),
        "sampled": sampled,
        "target": target,
    }
    if task == "regression":
        try:
            y = labelled[target].astype("float64").to_numpy()
        except (TypeError, ValueError) as exc:
            raise DataError(f"The target column {target!r} must be numeric for a regression model: {exc}") from exc
        info.update(target_mean=float(y.mean()), target_std=float(y.std()))
    else:
        index = {_label_key(c): i for i, c in enumerate(classes)}
        keys = [_label_key(v) for v in labelled[target].tolist()]
        unknown = sorted({k for k in keys if k not in index})
        if unknown:
            raise DataError(
                f"The target column {target!r} holds label(s) {unknown[:10]} that are not among the model's "
                f"classes {list(map(str, classes))}."
            )
        y = np.fromiter((index[k] for k in keys), dtype=np.int64, count=len(keys))
        counts = np.bincount(y, minlength=len(classes))
        info["class_counts"] = {str(c): int(n) for c, n in zip(classes, counts, strict=True)}
    return EvaluationData(frame=labelled, y=y, info=info)


def _task_of(spec: Mapping[str, Any]) -> tuple[gm.Task, str, list[Any]]:
    task = spec.get("task")
    if task not in ("binary", "multiclass", "regression"):
        raise SpecError(
            f"The training spec's 'task' must be 'binary', 'multiclass' or 'regression'. Got {task!r} instead."
        )
    target = spec.get("target")
    if not isinstance(target, str) or not target:
        raise SpecError(f"The training spec must name its 'target' column. Got {target!r} instead.")
    classes = list(spec.get("classes") or [])
    if task != "regression":
        expected = 2 if task == "binary" else None
        if len(classes) < 2 or (expected and len(classes) != expected):
            raise SpecError(
                f"The training spec of a {task} model must list its 'classes' "
                f"({'exactly two' if expected else 'at least two'}). Got {classes!r} instead."
            )
    return cast(gm.Task, task), target, classes


# -- scoring ----------------------------------------------------------------------------------------
def _predictions(task: gm.Task, outputs: Mapping[str, np.ndarray]) -> np.ndarray:
    from airflow_mlops.core.contracts import ONNX_OUTPUT_PROBABILITIES, ONNX_OUTPUT_REGRESSION

    key = ONNX_OUTPUT_REGRESSION if task == "regression" else ONNX_OUTPUT_PROBABILITIES
    if key not in outputs:
        raise SpecError(
            f"The ONNX graph of a {task} model must have an output named {key!r}. It has {sorted(outputs)}."
        )
    values = outputs[key]
    return values.reshape(-1).astype("float64") if task == "regression" else values.astype("float64")


def _score(model: OnnxModel, task: gm.Task, frame: pd.DataFrame, n_classes: int) -> np.ndarray:
    prediction = _predictions(task, model.run(frame))
    if task != "regression" and (prediction.ndim != 2 or prediction.shape[1] != n_classes):
        raise SpecError(
            f"The ONNX 'probabilities' output has shape {prediction.shape}; the spec lists {n_classes} classes."
        )
    return prediction


def measure_latency(
    model_bytes: bytes, inputs: Sequence[OnnxInput], frame: pd.DataFrame, *, rows: int, repeats: int
) -> float:
    """Median milliseconds to score 1,000 rows, frame to outputs, in a fresh one-thread session."""
    import statistics

    import pandas as pd

    sample = frame.head(rows)
    if len(sample) < rows:  # few evaluation rows: repeat them so the batch has the budgeted size
        sample = pd.concat([sample] * (rows // max(1, len(sample)) + 1), ignore_index=True).head(rows)
    model = OnnxModel(model_bytes, inputs, threads=1)
    model.run(sample)  # warm-up: the first run pays for allocations
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.run(sample)
        timings.append(time.perf_counter() - start)
    return statistics.median(timings) * 1000.0 * 1000.0 / rows


# -- baseline ---------------------------------------------------------------------------------------
def _fit_predict(
    kind: str, task: gm.Task, train_frame: pd.DataFrame, train_y: np.ndarray, test_frame: pd.DataFrame,
    inputs: Sequence[OnnxInput], n_classes: int,
) -> np.ndarray:  # fmt: skip
    """Fit the baseline on one set of rows and predict another."""
    import numpy as np

    n = len(test_frame)
    if kind in ("prior", "mean"):
        if task == "regression":
            return np.full(n, float(train_y.mean()))
        prior = np.bincount(train_y, minlength=n_classes) / len(train_y)
        return np.tile(prior, (n, 1))
    model = _linear_baseline(task, inputs)
    x_train, x_test = _baseline_features(train_frame, inputs), _baseline_features(test_frame, inputs)
    if task == "regression":
        model.fit(x_train, train_y)
        return np.asarray(model.predict(x_test), dtype=np.float64)
    out = np.zeros((n, n_classes), dtype=np.float64)
    present = np.unique(train_y)
    if len(present) == 1:
        out[:, present[0]] = 1.0
        return out
    model.fit(x_train, train_y)
    out[:, model.classes_] = model.predict_proba(x_test)
    return out


def baseline_predictions(
    kind: str, task: gm.Task, data: EvaluationData, inputs: Sequence[OnnxInput], n_classes: int, *,
    folds: int, seed: int, train: EvaluationData | None = None,
) -> np.ndarray:  # fmt: skip
    """Predictions of a simple model for the evaluation rows.

    With ``train`` (the candidate's training sample) the baseline learns from the same rows the
    candidate learned from. Without it, it is cross-fitted on the evaluation rows: every row is
    predicted by a fit that did not see it, but the fit knows the evaluation period, which makes the
    check stricter than the candidate's own situation.
    """
    import numpy as np
    from sklearn.model_selection import KFold, StratifiedKFold

    if train is not None:
        return _fit_predict(kind, task, train.frame, train.y, data.frame, inputs, n_classes)
    y = data.y
    n = len(y)
    folds = max(2, min(folds, n))
    splitter: Any = KFold(n_splits=folds, shuffle=True, random_state=seed)
    if task != "regression":
        counts = np.bincount(y, minlength=n_classes)
        if int(counts[counts > 0].min()) >= folds:
            splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    out = np.empty(n if task == "regression" else (n, n_classes), dtype=np.float64)
    for fit_rows, predict_rows in splitter.split(np.zeros(n), y):
        out[predict_rows] = _fit_predict(
            kind, task, data.frame.iloc[fit_rows], y[fit_rows], data.frame.iloc[predict_rows], inputs, n_classes
        )
    return out


def _baseline_features(frame: pd.DataFrame, inputs: Sequence[OnnxInput]) -> pd.DataFrame:
    from airflow_mlops.core.onnx_model import feed

    arrays = feed(frame, inputs)
    import pandas as pd

    return pd.DataFrame({i.name: arrays[i.name].reshape(-1) for i in inputs})


def _linear_baseline(task: gm.Task, inputs: Sequence[OnnxInput]) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [i.name for i in inputs if i.type == "float"]
    categorical = [i.name for i in inputs if i.type == "string"]
    parts: list[tuple[str, Any, list[str]]] = []
    if numeric:
        parts.append(
            (
                "num",
                make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler()),
                numeric,
            )
        )
    if categorical:
        encoder = OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=20, max_categories=50)
        parts.append(("cat", encoder, categorical))
    estimator = Ridge(alpha=1.0) if task == "regression" else LogisticRegression(max_iter=1000)
    return Pipeline([("features", ColumnTransformer(parts)), ("model", estimator)])


# -- evaluation -------------------------------------------------------------------------------------
def _compatibility(candidate: Mapping[str, Any], champion: Mapping[str, Any]) -> str | None:
    """Why the champion cannot be compared with the candidate, or None when it can."""
    try:
        c_task, c_target, c_classes = _task_of(candidate)
        h_task, h_target, h_classes = _task_of(champion)
    except SpecError as exc:
        return f"the champion's training spec is unusable: {exc}"
    if (c_task, c_target) != (h_task, h_target):
        return f"the champion is a {h_task} model of {h_target!r}, the candidate a {c_task} model of {c_target!r}"
    if [_label_key(c) for c in c_classes] != [_label_key(c) for c in h_classes]:
        return f"the champion's classes {h_classes!r} differ from the candidate's {c_classes!r}"
    return None


def _slices(
    policy: SlicePolicy, metric: gm.Metric, data: EvaluationData, candidate: np.ndarray, champion: np.ndarray | None
) -> tuple[list[dict[str, Any]], list[Check]]:
    import numpy as np

    tables: list[dict[str, Any]] = []
    checks: list[Check] = []
    for column in policy.columns:
        if column not in data.frame.columns:
            raise DataError(
                f"The slice column {column!r} is not in the evaluation data. "
                f"Columns present: {sorted(map(str, data.frame.columns))}."
            )
        raw = data.frame[column]
        keys = raw.astype("object").where(raw.notna(), MISSING_SLICE).astype(str).to_numpy()
        values, counts = np.unique(keys, return_counts=True)
        order = np.argsort(-counts, kind="mergesort")[: policy.max_slices]
        rows: list[dict[str, Any]] = []
        for i in order:
            mask = keys == values[i]
            value_candidate = gm.compute(metric.name, data.y[mask], candidate[mask])
            value_champion = None if champion is None else gm.compute(metric.name, data.y[mask], champion[mask])
            is_judged = bool(counts[i] >= policy.min_rows and not math.isnan(value_candidate))
            rows.append(
                {
                    "value": str(values[i]),
                    "rows": int(counts[i]),
                    "candidate": value_candidate,
                    "champion": value_champion,
                    "judged": is_judged,
                }
            )
        tables.append({"column": column, "metric": metric.name, "slices": rows, "slices_total": len(values)})
        judged = [r for r in rows if r["judged"]]
        name = f"slice_floor:{column}"
        if policy.floor is not None:
            if not judged:
                checks.append(
                    Check(
                        name,
                        "skipped",
                        None,
                        policy.floor,
                        f"no slice of {column!r} has {policy.min_rows}+ rows and a defined {metric.name}",
                    )
                )
            else:
                worst = min(judged, key=lambda r: metric.improvement(r["candidate"], 0.0))
                ok = metric.better_or_equal(worst["candidate"], policy.floor)
                op = ">=" if metric.higher_is_better else "<="
                checks.append(
                    Check(
                        name,
                        "passed" if ok else "failed",
                        worst["candidate"],
                        policy.floor,
                        f"worst {column} slice {worst['value']!r} ({worst['rows']} rows) has {metric.name} "
                        f"{_fmt(worst['candidate'])}; every slice must be {op} {policy.floor:g}",
                    )
                )
        if policy.max_gap is not None:
            name = f"slice_gap:{column}"
            if len(judged) < 2:
                checks.append(
                    Check(
                        name,
                        "skipped",
                        None,
                        policy.max_gap,
                        f"fewer than two slices of {column!r} have {policy.min_rows}+ rows",
                    )
                )
            else:
                best = max(judged, key=lambda r: metric.improvement(r["candidate"], 0.0))
                worst = min(judged, key=lambda r: metric.improvement(r["candidate"], 0.0))
                gap = abs(best["candidate"] - worst["candidate"])
                checks.append(
                    Check(
                        name,
                        "passed" if gap <= policy.max_gap else "failed",
                        gap,
                        policy.max_gap,
                        f"{metric.name} ranges from {_fmt(worst['candidate'])} ({worst['value']!r}) to "
                        f"{_fmt(best['candidate'])} ({best['value']!r}) across {column} slices",
                    )
                )
    return tables, checks


PARITY_MEASURES: dict[str, str] = {
    "binary": "max_abs_probability_diff",
    "multiclass": "max_abs_probability_diff",
    "regression": "max_rel_diff",
}


def parity_difference(task: gm.Task, native: np.ndarray, onnx: np.ndarray) -> float:
    """The training stem's parity measure: largest absolute probability difference for classifiers,
    largest difference relative to ``max(|native|, 1)`` for regressors."""
    import numpy as np

    if len(native) == 0:
        return 0.0
    difference = np.abs(native - onnx)
    if task == "regression":
        difference = difference / np.maximum(np.abs(native), 1.0)
    if np.isnan(difference).any():
        return float("inf")
    return float(difference.max())


def _parity(
    candidate: ModelUnderTest, task: gm.Task, data: EvaluationData, onnx_prediction: np.ndarray, threshold: float
) -> tuple[dict[str, Any], Check]:
    import numpy as np

    measure = PARITY_MEASURES[task]
    if candidate.native_predict is not None:
        rows = min(len(data.frame), 5000)
        native = np.asarray(candidate.native_predict(data.frame.head(rows)), dtype=np.float64)
        expected = onnx_prediction[:rows]
        if native.shape != expected.shape:
            native = native.reshape(expected.shape)
        value = parity_difference(task, native, expected)
        source, message = "native", f"ONNX against the native model on {rows} evaluation rows"
    elif candidate.logged_parity is not None:
        value, source, rows = float(candidate.logged_parity), "logged", 0
        message = "parity the training run measured on its test split"
    else:
        info = {"source": "none", "measure": measure, "value": None, "threshold": threshold, "rows": 0}
        message = "no native model and no parity logged by the training run: ONNX parity is unproven"
        return info, Check("parity", "failed", None, threshold, message)
    info = {"source": source, "measure": measure, "value": value, "threshold": threshold, "rows": rows}
    status: Status = "passed" if value <= threshold else "failed"
    return info, Check("parity", status, value, threshold, f"{message}: {measure} {value:.3g} (budget {threshold:g})")


def evaluate(
    candidate: ModelUnderTest,
    champion: ModelUnderTest | None,
    frame: pd.DataFrame,
    policy: GatePolicy,
    *,
    data_uri: str = "",
    data_sha256: str = "",
    force: bool = False,
    force_reason: str | None = None,
) -> GateDecision:
    """Evaluate the candidate (and the champion, when there is one) on ``frame`` and decide.

    :raises IntegrityError: a model's bytes do not match its recorded sha256.
    :raises DataError: the evaluation data lacks the target, a candidate feature, or a slice column.
    :raises SpecError: the candidate's spec is unusable, or the policy names metrics that do not
        apply to its task.
    """
    task, _target, classes = _task_of(candidate.spec)
    policy.check_task(task)
    primary = gm.metric(policy.primary_for(task, candidate.spec.get("primary_metric")), task)
    data = prepare_data(
        frame, candidate.spec, max_rows=policy.max_rows, seed=policy.seed, uri=data_uri, sha256=data_sha256
    )
    n_classes = len(classes)
    names = gm.metrics_for(task)

    inputs = inputs_from_spec(candidate.spec)
    candidate_model = OnnxModel(candidate.onnx_bytes, inputs, expected_sha256=candidate.expected_sha256)
    candidate_prediction = _score(candidate_model, task, data.frame, n_classes)
    candidate_metrics = gm.compute_all(names, data.y, candidate_prediction)
    checks: list[Check] = []

    # champion: resolved by the caller; here it is scored on the very same rows
    champion_prediction, champion_metrics, champion_info, champion_latency = None, None, None, None
    comparable = False
    if champion is not None:
        champion_info = _model_info(champion)
        reason = _compatibility(candidate.spec, champion.spec)
        if reason is None:
            try:
                champion_inputs = inputs_from_spec(champion.spec)
                champion_model = OnnxModel(
                    champion.onnx_bytes, champion_inputs, expected_sha256=champion.expected_sha256
                )
                champion_prediction = _score(champion_model, task, data.frame, n_classes)
            except DataError as exc:
                reason = f"the champion cannot score the evaluation data: {exc}"
            else:
                champion_metrics = gm.compute_all(names, data.y, champion_prediction)
                champion_latency = measure_latency(
                    champion.onnx_bytes,
                    champion_inputs,
                    data.frame,
                    rows=policy.latency_rows,
                    repeats=policy.latency_repeats,
                )
                comparable = True
        checks.append(
            Check(
                "champion_comparable",
                "passed" if comparable else "failed",
                champion.version,
                None,
                reason or f"champion version {champion.version} scored on the same rows",
            )
        )
    elif policy.first_run == "reject":
        checks.append(
            Check(
                "champion_required", "failed", None, None, "there is no champion and the policy's first_run is 'reject'"
            )
        )

    # absolute floors
    for name, bound in policy.floors.items():
        spec = gm.METRICS[name]
        value = candidate_metrics[name]
        ok = not math.isnan(value) and spec.better_or_equal(value, bound)
        op = ">=" if spec.higher_is_better else "<="
        checks.append(
            Check(
                f"floor:{name}",
                "passed" if ok else "failed",
                value,
                bound,
                f"candidate {name} {_fmt(value)} must be {op} {bound:g}",
            )
        )

    # relative non-regression (and its bootstrap confidence)
    bootstrap: list[dict[str, Any]] = []
    for name in policy.compare_metrics or (primary.name,):
        spec, tolerance = gm.METRICS[name], policy.tolerance_for(name)
        check_name = f"non_regression:{name}"
        if not comparable or champion_metrics is None:
            why = (
                "no champion: first-run policy (absolute checks only)"
                if champion is None
                else "champion not comparable"
            )
            checks.append(Check(check_name, "skipped", candidate_metrics[name], None, why))
            continue
        bound = spec.shift_worse(champion_metrics[name], tolerance)
        value = candidate_metrics[name]
        ok = not math.isnan(value) and spec.better_or_equal(value, bound)
        checks.append(
            Check(
                check_name,
                "passed" if ok else "failed",
                value,
                bound,
                f"candidate {name} {_fmt(value)} vs champion {_fmt(champion_metrics[name])} (tolerance {tolerance:g})",
            )
        )
        if policy.bootstrap.enabled and champion_prediction is not None:
            result = gm.paired_bootstrap(
                name,
                data.y,
                candidate_prediction,
                champion_prediction,
                samples=policy.bootstrap.samples,
                confidence=policy.bootstrap.confidence,
                seed=policy.bootstrap.seed,
                tolerance=tolerance,
            )
            bootstrap.append(result.to_dict())
            checks.append(
                Check(
                    f"bootstrap:{name}",
                    "passed" if result.passed else "failed",
                    result.lower,
                    -tolerance if tolerance else 0.0,  # never "-0"
                    f"with {policy.bootstrap.confidence:.0%} confidence the candidate's {name} improvement over the "
                    f"champion is >= {_fmt(result.lower)} (mean {_fmt(result.mean)}, "
                    f"{result.samples} paired resamples)",
                )
            )

    # slices
    slice_metric = gm.METRICS[policy.slices.metric or primary.name]
    slice_tables, slice_checks = _slices(policy.slices, slice_metric, data, candidate_prediction, champion_prediction)
    checks += slice_checks

    # baseline
    baseline_info = None
    if policy.baseline.enabled:
        kind = policy.baseline.kind
        if kind == "auto":
            kind = "mean" if task == "regression" else "prior"
        compared = policy.baseline.metrics or (
            (primary.name,) if task == "regression" else tuple(dict.fromkeys((primary.name, "log_loss")))
        )
        train, fit_on = None, "evaluation"
        if policy.baseline.fit_on == "train_sample" and candidate.training_sample is not None:
            train = prepare_data(candidate.training_sample, candidate.spec, max_rows=policy.max_rows, seed=policy.seed)
            fit_on = "train_sample"
        prediction = baseline_predictions(
            kind, task, data, inputs, n_classes, folds=policy.baseline.folds, seed=policy.baseline.seed, train=train
        )
        baseline_metrics = gm.compute_all(names, data.y, prediction)
        baseline_info = {
            "kind": kind,
            "folds": policy.baseline.folds,
            "metrics": baseline_metrics,
            "compared": list(compared),
            "margin": policy.baseline.margin,
            "fit_on": fit_on,
            "fit_rows": len(train.y) if train is not None else len(data.y),
        }
        for name in compared:
            spec = gm.METRICS[name]
            bound = spec.shift_worse(baseline_metrics[name], policy.baseline.margin)
            value = candidate_metrics[name]
            ok = not math.isnan(value) and (math.isnan(bound) or spec.better_or_equal(value, bound))
            checks.append(
                Check(
                    f"baseline:{name}",
                    "passed" if ok else "failed",
                    value,
                    bound,
                    f"candidate {name} {_fmt(value)} vs {kind} baseline {_fmt(baseline_metrics[name])} "
                    + (
                        "fitted on the candidate's training sample"
                        if fit_on == "train_sample"
                        else "cross-fitted on the evaluation rows"
                    ),
                )
            )

    # parity, latency, size
    parity_info, parity_check = _parity(candidate, task, data, candidate_prediction, policy.max_parity_diff)
    checks.append(parity_check)
    latency = measure_latency(
        candidate.onnx_bytes, inputs, data.frame, rows=policy.latency_rows, repeats=policy.latency_repeats
    )
    latency_info = {
        "candidate_ms_per_1k": latency,
        "champion_ms_per_1k": champion_latency,
        "rows": policy.latency_rows,
        "repeats": policy.latency_repeats,
        "threads": 1,
    }
    if policy.max_latency_ms_per_1k is not None:
        ok = latency <= policy.max_latency_ms_per_1k
        checks.append(
            Check(
                "latency_ms_per_1k",
                "passed" if ok else "failed",
                latency,
                policy.max_latency_ms_per_1k,
                f"median of {policy.latency_repeats} runs of {policy.latency_rows} rows in ONNX Runtime",
            )
        )
    size = len(candidate.onnx_bytes)
    if policy.max_model_bytes is not None:
        checks.append(
            Check(
                "model_size_bytes",
                "passed" if size <= policy.max_model_bytes else "failed",
                size,
                policy.max_model_bytes,
                f"ONNX file of {size} bytes",
            )
        )

    all_passed = all(c.passed for c in checks)
    forced = bool(force and not all_passed)
    verdict: Verdict = "passed" if all_passed else ("forced" if forced else "rejected")
    return GateDecision(
        passed=all_passed or forced,
        verdict=verdict,
        forced=forced,
        force_reason=(force_reason or "forced without a stated reason") if forced else None,
        first_run=champion is None,
        reasons=tuple(checks),
        candidate={**_model_info(candidate), "size_bytes": size, "sha256": candidate_model.sha256},
        champion=champion_info,
        candidate_metrics=candidate_metrics,
        champion_metrics=champion_metrics,
        baseline=baseline_info,
        slices=slice_tables,
        parity=parity_info,
        latency=latency_info,
        bootstrap=bootstrap,
        data=data.info,
        policy=policy.to_dict(),
        task=task,
        primary_metric=primary.name,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def _model_info(model: ModelUnderTest) -> dict[str, Any]:
    from airflow_mlops.core.storage import sha256_bytes

    spec = model.spec
    return {
        "role": model.role,
        "run_id": model.run_id,
        "version": model.version,
        "sha256": sha256_bytes(model.onnx_bytes),
        "size_bytes": len(model.onnx_bytes),
        "task": spec.get("task"),
        "target": spec.get("target"),
        "features": [i.get("column", i.get("name")) for i in spec.get("onnx_inputs") or [] if isinstance(i, Mapping)],
        "estimator": spec.get("estimator") or spec.get("model"),
    }


# -- evidence ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Evidence:
    """Where the decision record and the model card were written, and their content."""

    decision_uri: str
    markdown_uri: str
    html_uri: str
    files: dict[str, bytes]  # file name -> content, for logging the same files as run artifacts

    def to_dict(self) -> dict[str, str]:
        return {"decision_uri": self.decision_uri, "markdown_uri": self.markdown_uri, "html_uri": self.html_uri}


def evidence_location(storage: StorageRoot, pipeline: str, partition: str, run_id: str) -> str:
    """Folder of a candidate's gate evidence: ``{root}/{pipeline}/evidence/{partition}/gate/{run_id}``."""
    return storage.layout(pipeline, KIND_EVIDENCE, partition, "gate", run_id)


def write_evidence(storage: StorageRoot, decision: GateDecision, folder: str) -> tuple[GateDecision, Evidence]:
    """Write the model card (Markdown, HTML) and then the decision record (JSON) under ``folder``.

    Each file is written atomically; the decision record goes last, so when it exists the cards
    beside it are complete. A rerun of the same partition replaces the same files.

    :return: the decision with ``evidence_uri`` set to the decision record, and where things went.
    """
    from airflow_mlops.core.gating.card import render_html, render_markdown

    decision_uri = f"{folder}/{DECISION_FILE}"
    decision = dataclasses.replace(decision, evidence_uri=decision_uri)
    files = {
        CARD_MARKDOWN_FILE: render_markdown(decision).encode(),
        CARD_HTML_FILE: render_html(decision).encode(),
        DECISION_FILE: json.dumps(decision.to_dict(), indent=2, sort_keys=True).encode(),
    }
    for name, content in files.items():
        storage.write_bytes(f"{folder}/{name}", content)
    evidence = Evidence(decision_uri, f"{folder}/{CARD_MARKDOWN_FILE}", f"{folder}/{CARD_HTML_FILE}", files)
    return decision, evidence
