"""Names shared across stems: asset URIs, artifact kinds, MLflow tags and aliases.

Training writes them, the gate and registry read and extend them, scoring and drift rely on them.
Keeping them in one module means a rename is one edit and a typo is an import error.
"""

from __future__ import annotations

# -- assets ------------------------------------------------------------------------------------
# Airflow hands an asset URI to the providers' normalisers by scheme, which imports every provider's
# asset module (the Amazon one imports boto3: ~0.2 s of DAG parsing). Schemes starting with "x-" are
# left as they are, so DAG files declaring our assets parse as fast as a bare DAG.
ASSET_SCHEME = "x-mlops"


def asset_uri(pipeline: str, what: str) -> str:
    """``x-mlops://<pipeline>/<what>`` where what is ``dataset``, ``model`` or ``drift``."""
    return f"{ASSET_SCHEME}://{pipeline}/{what}"


# -- storage layout kinds: {root}/{pipeline}/{kind}/{partition}/... -------------------------------
KIND_SNAPSHOT = "snapshots"
KIND_VALIDATION = "validation"
KIND_EVIDENCE = "evidence"
KIND_PREDICTIONS = "predictions"
KIND_SERVING_LOG = "serving_log"
KIND_DRIFT = "drift"
KIND_LABELS = "labels"
KIND_EVALUATION = "evaluation"  # holdout splits written by training, read by the gate

# -- MLflow registry ---------------------------------------------------------------------------
ALIAS_CHAMPION = "champion"
ALIAS_CHALLENGER = "challenger"
ALIAS_PREVIOUS_CHAMPION = "previous_champion"

# Run artifacts written by training (paths relative to the run's artifact root).
ARTIFACT_NATIVE_MODEL = "model"
# Each exported graph is an MLflow model folder (MLmodel with the ``onnx`` and ``python_function``
# flavors, signature, input example, requirements) holding the graph as ONNX_MODEL_FILE; the folder is
# what a model version's source points at, the file is what this package loads and checks the sha256 of.
ONNX_MODEL_FILE = "model.onnx"
ARTIFACT_ONNX_MODEL = "onnx"
# With ``refit: all`` the run registers the refit (ARTIFACT_ONNX_MODEL) and keeps the selection model the
# gate judges on the test split here; its sha256 is the tag TAG_SELECTION_ONNX_SHA256.
ARTIFACT_ONNX_SELECTION_MODEL = "onnx_selection"


def onnx_file(model_folder: str) -> str:
    """The run artifact path of the ONNX graph inside an MLflow model folder of the run: the one place
    that says where the graph lives in the folder (every reader goes through it)."""
    return f"{model_folder.strip('/')}/{ONNX_MODEL_FILE}"


ARTIFACT_ONNX = onnx_file(ARTIFACT_ONNX_MODEL)
ARTIFACT_ONNX_SELECTION = onnx_file(ARTIFACT_ONNX_SELECTION_MODEL)
ARTIFACT_NATIVE_SELECTION_MODEL = "model_selection"  # its native pipeline, for the gate's parity re-check
ARTIFACT_REFERENCE_SELECTION = "reference_selection/reference.parquet"  # its train-split sample (gate baseline)
ARTIFACT_SPEC = "spec/training_spec.json"
# LightGBM models only: the booster as LightGBM's text model, what serving.runtime 'compiled' compiles;
# its sha256 is the run tag TAG_LIGHTGBM_SHA256.
ARTIFACT_LIGHTGBM_TEXT = "lightgbm/model.txt"
ARTIFACT_REFERENCE = "reference/reference.parquet"  # a bounded sample of the training data, for drift
ARTIFACT_SUITE = "validation/expectation_suite.json"

# Tags: on training runs and copied onto model versions at registration.
TAG_PREFIX = "mlops."
TAG_ONNX_SHA256 = "mlops.onnx_sha256"
TAG_LIGHTGBM_SHA256 = "mlops.lightgbm_sha256"
TAG_DATASET_URI = "mlops.dataset_uri"
TAG_DATASET_SHA256 = "mlops.dataset_sha256"
TAG_PIPELINE = "mlops.pipeline"
TAG_DAG_ID = "mlops.dag_id"
TAG_RUN_ID = "mlops.run_id"
TAG_TASK_ID = "mlops.task_id"
TAG_TRY_NUMBER = "mlops.try_number"
TAG_PACKAGE_VERSION = "mlops.package_version"
TAG_GIT_SHA = "mlops.git_sha"
TAG_GATE_EVIDENCE_URI = "mlops.gate_evidence_uri"
TAG_GATE_PASSED = "mlops.gate_passed"
TAG_SOURCE_RUN_ID = "mlops.source_run_id"
TAG_TEST_SPLIT_URI = "mlops.test_split_uri"
TAG_MODEL_FIT = "mlops.model_fit"  # "refit_all" | "train_only": what the registered ONNX was fitted on
TAG_MODEL_FIT_ROWS = "mlops.model_fit_rows"  # rows the registered model was fitted on
TAG_DATA_END = "mlops.data_end"  # ISO time of the newest row of a time split: where the version's data ends
TAG_SELECTION_ONNX_SHA256 = "mlops.selection_onnx_sha256"  # the judged selection model (refit_all)
# The ``metadata`` key of an MLflow model's MLmodel under which training records what the pyfunc
# loader (airflow_mlops.core.serving.pyfunc) needs: task, target, classes, onnx_inputs, onnx_sha256.
MLMODEL_METADATA_KEY = "mlops"

# -- the ONNX model contract -------------------------------------------------------------------
# Training exports the whole preprocessing + estimator pipeline to one ONNX graph; scoring, the gate
# and drift rely on this shape:
# - inputs: one per feature column, named exactly like the column, shape [None, 1];
#   numeric features as tensor(float), categorical features as tensor(string);
# - outputs, classifiers: "label" (tensor(int64) or tensor(string), shape [None]) and "probabilities"
#   (tensor(float), shape [None, n_classes], no ZipMap), classes in the order of the spec's "classes";
# - outputs, regressors: "variable" (tensor(float), shape [None, 1]).
# The training spec artifact (ARTIFACT_SPEC, JSON) carries: task ("binary" | "multiclass" |
# "regression"), target, numeric_features, categorical_features, classes (classifiers), and
# onnx_inputs: [{"name": ..., "column": ..., "type": "float" | "string"}].
ONNX_OUTPUT_LABEL = "label"
ONNX_OUTPUT_PROBABILITIES = "probabilities"
ONNX_OUTPUT_REGRESSION = "variable"

# -- data validation (written by the validation stem) -------------------------------------------
TAG_VALIDATION_SEVERITY = "mlops.validation_severity"  # "ok" | "warn" | "error"
TAG_VALIDATION_REPORT_URI = "mlops.validation_report_uri"
ARTIFACT_VALIDATION_SUMMARY = "validation/summary.json"
ARTIFACT_VALIDATION_REPORT = "validation/report.html"
# -- prediction columns ------------------------------------------------------------------------
# Names of prediction columns in frames that carry model outputs next to features: the training
# reference sample (ARTIFACT_REFERENCE) and, for prediction drift to line up, scored outputs.
# Classifiers: PREDICTION_COLUMN holds the label, and one f"{PROBABILITY_COLUMN_PREFIX}{class}"
# column per class (in the order of the spec's "classes"); regressors: PREDICTION_COLUMN only.
PREDICTION_COLUMN = "prediction"
PROBABILITY_COLUMN_PREFIX = "probability_"

# -- gate and registry (appended by the gating/registry stems) ------------------------------------
TAG_GATE_VERDICT = "mlops.gate_verdict"  # "passed" | "rejected" | "forced"
TAG_GATE_CHAMPION_VERSION = "mlops.gate_champion_version"  # the champion the gate compared against
# On a candidate run: JSON list of every gate decision on it, oldest first (the verdict tags hold the last).
TAG_GATE_HISTORY = "mlops.gate_history"
# Set last on a model version, once it is READY and carries every other tag: a version without it is
# an interrupted registration that promotion refuses and a retry of the registration completes.
TAG_REGISTRATION_COMPLETE = "mlops.registration_complete"
# Monitoring runs (drift reports, performance series): what they watch and which kind they are.
TAG_MONITORING_OF = "mlops.monitoring_of"  # the model version (name/vN), reference or pipeline watched
TAG_MONITORING = "mlops.monitoring"  # "drift" | "performance"
TAG_LAST_PROMOTION = "mlops.last_promotion"  # on the registered model: JSON of the last alias move
# On the registered model: JSON list of the recent alias moves (who, when, from, to), oldest first, bounded.
TAG_PROMOTION_HISTORY = "mlops.promotion_history"
GATE_ARTIFACT_DIR = "gate"  # decision.json, model_card.md, model_card.html on the candidate run
ARTIFACT_MODEL_CARD = f"{GATE_ARTIFACT_DIR}/model_card.html"  # the card a model version's description links
# -- scoring outputs: predictions and the serving log, read by drift monitoring and the gate -------
# {root}/{pipeline}/predictions/{partition}/predictions.parquet: passthrough columns, then
# PREDICTION_COLUMN and the probability columns (binary: "probability_1" is the positive class, the
# second of the spec's classes), then MODEL_NAME_COLUMN, MODEL_VERSION_COLUMN, SCORED_AT_COLUMN (the
# run's logical date, UTC). The serving log sample has the same columns plus the feature columns and
# the input's other flat columns (or the scoring spec's monitor_columns; never the label), for drift.
KIND_SHADOW = "shadow"  # {root}/{pipeline}/shadow/{partition}/report.json: champion vs challenger
PREDICTIONS_FILE = "predictions.parquet"
SERVING_LOG_FILE = "sample.parquet"
SHADOW_REPORT_FILE = "report.json"
MODEL_NAME_COLUMN = "model_name"
MODEL_VERSION_COLUMN = "model_version"
SCORED_AT_COLUMN = "scored_at"
# -- spec provenance (written by training, judged before promotion: core/provenance.py) -----------
TAG_SPEC_SHA256 = "mlops.spec_sha256"  # sha256 of the spec file's bytes (or of a mapping spec's JSON)
TAG_SPEC_KIND = "mlops.spec_kind"  # "file" | "mapping" (a spec written in the DAG file)
TAG_SPEC_SOURCE = "mlops.spec_source"  # the file read, absolute, on the worker that trained
TAG_SPEC_STATE = "mlops.spec_state"  # "clean" | "modified" | "untracked" | "unknown"
TAG_SPEC_STATE_BY = "mlops.spec_state_by"  # "git" | "bundle": what established the state
TAG_SPEC_COMMIT = "mlops.spec_commit"  # the repository's HEAD commit (or the bundle version)
TAG_SPEC_REPO_PATH = "mlops.spec_repo_path"  # the file's path inside the repository
TAG_SPEC_TRACKED = "mlops.spec_tracked"  # "true" | "false"
TAG_SPEC_MODIFIED = "mlops.spec_modified"  # "true" | "false": the working copy differs from HEAD
TAG_SPEC_NOTE = "mlops.spec_note"  # why the state is what it is, when it is not plainly clean
TAG_BUNDLE_NAME = "mlops.bundle_name"  # the Airflow DAG bundle the task ran from
TAG_BUNDLE_VERSION = "mlops.bundle_version"  # its version (a commit for GitDagBundle), when versioned
