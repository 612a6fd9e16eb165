"""The main job on shipped real data with embedded defaults, on a real Airflow scheduler.

Everything lives under ``.state/`` in the project: the Airflow home and its SQLite metadata database,
the MLflow store and the storage root. The job starts Airflow's api-server, scheduler, dag-processor and
triggerer itself (LocalExecutor, 127.0.0.1), then acts as a user would, through the REST API:

1. the training months land, and it triggers ``continuous_training`` from its form, which trains, gates,
   registers and promotes the first champion;
2. each serving month lands, and it triggers ``batch_serving`` for that month's interval, which
   validates, scores with the champion and checks drift. When the drift policy or the staleness check
   asks for a retrain, their asset event ``x-mlops://flights_delay/drift`` makes the scheduler start a
   ``continuous_training`` run by itself (run type ``asset_triggered``); the job waits for it, and the
   gate decides whether the new model replaces the champion for the next month.

Task logs, run durations and the asset-triggered run are then in the Airflow UI. The job stops what it
started when it ends (or on Ctrl-C); ``--keep-running`` leaves the UI up until Ctrl-C, and ``--ui`` only
starts the deployment again to look around. The quick path without a scheduler, one DAG run in-process,
stays ``airflow dags test`` (docs/quickstart.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / ".state"
FLIGHTS = ROOT / "include" / "data" / "nycflights13" / "flights.parquet"
VENV_BIN = Path(sys.executable).parent
TRAINING, SERVING = "continuous_training", "batch_serving"
PIPELINE = MODEL = "flights_delay"
DRIFT_URI = f"x-mlops://{PIPELINE}/drift"
YEAR = 2013
UI_PORT = 8080
CHECK_PREFIXES = ("check_", "record_", "measure_", "explain_")  # the production-readiness tasks


def embedded_environment(port: int) -> dict[str, str]:
    """The settings of the embedded deployment, as environment variables; ``port`` is the api-server's."""
    mlflow_dir = STATE / "mlflow"
    return {
        "AIRFLOW_HOME": str(STATE / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{STATE / 'airflow' / 'airflow.db'}",
        # A local deployment on 127.0.0.1: every visitor of the UI is an admin, no password to find.
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__MLOPS__STORAGE_ROOT": str(STATE / "storage"),
        "AIRFLOW__MLOPS__MLFLOW_TRACKING_URI": f"sqlite:///{mlflow_dir / 'mlflow.db'}",
        "AIRFLOW__MLOPS__MLFLOW_ARTIFACT_ROOT": str(mlflow_dir / "artifacts"),
        "AIRFLOW__MLOPS__MLFLOW_UI_URL": "http://127.0.0.1:5000",
        # Extra links are the plugin's addresses under the api-server's base URL, resolved when clicked;
        # with no reports address the report and predictions links open through the plugin too, behind
        # Airflow's own sign-in (docs/deployment.md): no separate web server.
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
    }


def write_env_file(env: dict[str, str]) -> Path:
    path = STATE / "env.sh"
    lines = ["# Source this file to use the embedded deployment: . .state/env.sh"]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in env.items()]
    lines.append(f'export PATH={shlex.quote(str(VENV_BIN))}:"$PATH"')
    path.write_text("\n".join(lines) + "\n")
    return path


def month_date(month: int) -> str:
    """The first day of a month of the replay year, ISO; month 13 is January of the next year."""
    return f"{YEAR + (month - 1) // 12}-{(month - 1) % 12 + 1:02d}-01T00:00:00Z"


def say(text: str) -> None:
    print(text, flush=True)


class Narrator:
    """What the runs did, read back through the REST API and MLflow, as a user would look it up."""

    def __init__(self, api: Any) -> None:
        from airflow_mlops.hooks.mlflow import MlflowHook

        self.api = api
        self.client = MlflowHook().get_conn()
        self.story: list[str] = []
        self.last_training = ""

    def champion(self) -> str:
        from airflow_mlops.core import registry

        return str(registry.alias_version(self.client, MODEL, "champion") or "none")

    def drift_events(self, run: dict[str, Any]) -> list[dict[str, Any]]:
        """The drift asset events of this attempt of a serving run (a cleared run keeps its earlier ones)."""
        answer = self.api.get("/api/v2/assets/events", source_dag_id=SERVING, source_run_id=run["dag_run_id"], limit=50)
        since = run.get("start_date") or ""
        return [e for e in answer["asset_events"] if e["uri"] == DRIFT_URI and str(e.get("timestamp")) >= since]

    def checks(self, dag_id: str, run_id: str) -> str:
        """``task severity`` of the run's production-readiness checks (their state where they left none)."""
        found: dict[str, list[str]] = {}
        for ti in sorted(self.api.task_instances(dag_id, run_id), key=lambda t: (t["task_id"], t["map_index"])):
            group, _, name = ti["task_id"].rpartition(".")
            if group != PIPELINE or not name.startswith(CHECK_PREFIXES) or name == "check_drift":
                continue
            value = self._return_value(dag_id, run_id, ti) if ti["state"] == "success" else None
            severity = value.get("severity") if isinstance(value, dict) else None
            found.setdefault(name, []).append(str(severity or ti["state"] or "not run"))
        return ", ".join(f"{name} {'/'.join(values)}" for name, values in found.items()) or "none"

    def _return_value(self, dag_id: str, run_id: str, ti: dict[str, Any]) -> Any:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/xcomEntries/return_value"
        answer = self.api.request("GET", path, params={"map_index": ti["map_index"], "deserialize": "true"},
                                  expect=(200, 404))  # fmt: skip
        value = (answer or {}).get("value")
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return None
        return value

    def gate_verdict(self, run_id: str) -> str:
        states = {ti["task_id"]: ti["state"] for ti in self.api.task_instances(TRAINING, run_id)}
        gate, promote = states.get(f"{PIPELINE}.gate"), states.get(f"{PIPELINE}.promote")
        if gate != "success":
            return f"gate {gate or 'not run'}"
        return "passed, promoted" if promote == "success" else "rejected, champion kept"

    def log_excerpt(self, task: str) -> str:
        """A line of the last training's task log as the UI shows it: the logs are in Airflow."""
        from airflow_mlops.cli.airflow_api import ServiceError

        try:
            events = self.api.task_log(TRAINING, self.last_training, f"{PIPELINE}.{task}")
        except ServiceError as exc:
            return f"(not readable: {str(exc).splitlines()[0]})"
        trained = [e for e in events if e.startswith("Trained ")] or events or ["(none)"]
        return f"{len(events)} lines, e.g. {trained[-1][:140]!r}"


def train(api: Any, narrator: Narrator, why: str) -> str:
    say(f"\n== continuous_training ({why}): triggered from its form")
    run_id = api.trigger(TRAINING, conf={"pipeline": PIPELINE}, note=f"main job: {why}")
    return follow_training(api, narrator, run_id, why)


def follow_training(api: Any, narrator: Narrator, run_id: str, why: str) -> str:
    started = time.monotonic()
    run = api.wait_for_run(TRAINING, run_id, timeout=1200)
    verdict = narrator.gate_verdict(run_id)
    checks = narrator.checks(TRAINING, run_id)
    say(f"   {run['run_type']} run {run_id} done in {time.monotonic() - started:.0f} s: {verdict}; "
        f"champion is v{narrator.champion()}")  # fmt: skip
    say(f"   checks: {checks}")
    narrator.story.append(f"continuous_training ({why}, {run['run_type']}): {verdict}, champion v{narrator.champion()}")
    narrator.last_training = run_id
    # Its own ingest event queues one more run, which sees the event is its own and trains nothing.
    api.wait_until_idle(TRAINING, timeout=600)
    return run_id


def serve(api: Any, narrator: Narrator, month: int) -> tuple[str, list[dict[str, Any]]]:
    label = f"{YEAR}-{month:02d}"
    scored_by = narrator.champion()
    earlier = api.run_with_logical_date(SERVING, month_date(month + 1))
    if earlier is None:
        say(f"\n== month {label} lands; batch_serving is triggered for its interval")
        run_id = api.trigger(SERVING, conf={"pipeline": PIPELINE}, logical_date=month_date(month + 1),
                             note=f"main job: serve {label}")  # fmt: skip
    else:  # an earlier replay served this month: run it again, as "Clear" in the UI does
        run_id = earlier["dag_run_id"]
        say(f"\n== month {label} lands again; batch_serving's run {run_id} of its interval is cleared")
        api.clear_run(SERVING, run_id)
    started = time.monotonic()
    run = api.wait_for_run(SERVING, run_id, timeout=1200)
    checks = narrator.checks(SERVING, run_id)
    events = narrator.drift_events(run)
    say(f"   done in {time.monotonic() - started:.0f} s, scored by champion v{scored_by}; checks: {checks}")
    if not events:
        say("   no drift asset event: the drift policy did not ask for a retrain.")
        narrator.story.append(f"{label} batch_serving: scored by v{scored_by}; no retrain asked")
        return run_id, events
    reason = "; ".join(dict.fromkeys(str((e.get("extra") or {}).get("reason", "")).rstrip(".") for e in events))
    say(f"   batch_serving emitted {DRIFT_URI}: {reason}")
    narrator.story.append(f"{label} batch_serving: scored by v{scored_by}; drift event ({reason})")
    return run_id, events


def replay_loop(api: Any, args: argparse.Namespace, landing: Path) -> Narrator:
    from airflow_mlops.cli.airflow_api import wait_for_run_caused_by
    from airflow_mlops.cli.replay import parse_months, replay

    narrator = Narrator(api)
    train_months, serve_months = parse_months(args.train_months), parse_months(args.months)
    say(f"\n== landing months {args.train_months} of {YEAR} into {landing}")
    replay(train_months, str(landing), source=FLIGHTS)
    train(api, narrator, f"first training on months {args.train_months}")
    for month in (m for m in serve_months if m not in train_months):
        replay([month], str(landing), source=FLIGHTS)
        known = {run["dag_run_id"] for run in api.runs(TRAINING)}
        serving, events = serve(api, narrator, month)
        if events:
            say("   the scheduler starts continuous_training on that event by itself ...")
            run = wait_for_run_caused_by(api, TRAINING, known, (DRIFT_URI, SERVING, serving), timeout=300)
            follow_training(api, narrator, run["dag_run_id"], f"drift event of {YEAR}-{month:02d}")
    return narrator


def start_view(api: Any) -> None:
    """Unpause the reference DAGs (new DAGs start paused), as a user does in the UI."""
    from airflow_mlops.cli.airflow_api import ServiceError

    for dag_id in (TRAINING, SERVING):
        api.wait_for_dag(dag_id)
        api.unpause(dag_id)
    # Unpausing makes the scheduler start batch_serving's latest real month, whose batch never lands: stop it.
    try:
        run = api.wait_for_new_run(SERVING, set(), timeout=30, run_type="scheduled")
        api.set_run_state(SERVING, run["dag_run_id"], "failed")
    except ServiceError:
        pass  # it had run before: nothing new was scheduled


def summary(narrator: Narrator, api_url: str, storage: Path, env_file: Path, settings: dict[str, str]) -> str:
    predictions = sorted((storage / PIPELINE / "predictions").glob("*/predictions.parquet"))
    reports = sorted((storage / PIPELINE / "drift").glob("*/**/report.html"))
    mlflow_uri, artifacts = (
        settings["AIRFLOW__MLOPS__MLFLOW_TRACKING_URI"],
        settings["AIRFLOW__MLOPS__MLFLOW_ARTIFACT_ROOT"],
    )
    return "\n".join([
        "", "Done. What happened:", *(f"  {line}" for line in narrator.story), "",
        f"Champion: models:/{MODEL}@champion = version {narrator.champion()}",
        f"Task log of {PIPELINE}.train in the last training, read back through the REST API: "
        f"{narrator.log_excerpt('train')}",
        f"Storage root:     {storage} ({len(predictions)} prediction file(s), {len(reports)} drift report(s))",
        f"MLflow store:     {mlflow_uri} (artifacts {artifacts})",
        f"Airflow home:     {settings['AIRFLOW_HOME']} (runs, task logs: in the UI at {api_url})",
        "",
        "Open the Airflow UI again (runs, task logs, extra links):  ./scripts/demo.sh --ui",
        "Open the MLflow UI (http://127.0.0.1:5000):",
        f"  . {env_file.relative_to(ROOT)} && mlflow ui --host 127.0.0.1 --port 5000 \\",
        f"      --backend-store-uri {mlflow_uri} --default-artifact-root {artifacts}",
        f"Reports (validation, drift, model cards) and predictions open from the task pages, through {api_url}/mlops/;",
        "the model view (champion, history, drift per batch, rollback) is Browse > MLOps models in the UI.",
    ])  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-months", default="1-3", help="months of 2013 the first champion is trained on")
    parser.add_argument(
        "--months", default="4-7",
        help="months of 2013 replayed through batch serving after it, one run each (default 4-7: the June delay "
        "surge drifts the label and retrains the model, and July is scored by the new champion)",
    )  # fmt: skip
    parser.add_argument("--keep-running", action="store_true", help="leave the Airflow UI up until Ctrl-C")
    parser.add_argument("--ui", action="store_true", help="only start the deployment and its UI, until Ctrl-C")
    args = parser.parse_args(argv)
    from airflow_mlops.cli.replay import parse_months

    train_months = parse_months(args.train_months)
    if not train_months or max(train_months) >= min([m for m in parse_months(args.months) if m > 0] or [13]):
        parser.error("--train-months must come before --months (e.g. --train-months 1-3 --months 4-6).")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # A plain kill (or `timeout`) must stop the components too: turn SIGTERM into an exit that unwinds.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    from airflow_mlops.cli.local_airflow import airflow_services, free_port, port_is_free

    port = UI_PORT if port_is_free(UI_PORT) else free_port()
    settings = embedded_environment(port)
    for key in ("AIRFLOW_HOME", "AIRFLOW__MLOPS__STORAGE_ROOT", "AIRFLOW__MLOPS__MLFLOW_ARTIFACT_ROOT"):
        Path(settings[key]).mkdir(parents=True, exist_ok=True)
    os.environ.update(settings)  # before anything imports airflow, here or in the children
    env_file = write_env_file(settings)
    storage = Path(settings["AIRFLOW__MLOPS__STORAGE_ROOT"])
    landing = storage / PIPELINE / "landing"
    if not args.ui:
        # The landing folder is the replay's own: start it afresh so a training snapshot holds exactly the
        # months landed so far. Models, runs and reports of earlier runs are kept (the gate compares with them).
        shutil.rmtree(landing, ignore_errors=True)
        landing.mkdir(parents=True)

    home = Path(settings["AIRFLOW_HOME"])
    say(f"== starting Airflow (api-server on http://127.0.0.1:{port}, scheduler, dag-processor, triggerer; "
        f"logs in {home / 'logs'})")  # fmt: skip
    database = settings["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    with airflow_services(home, database_url=database, dags_folder=ROOT / "dags", extra_env=settings,
                          api_port=port, startup_timeout=300, workdir=ROOT) as airflow:  # fmt: skip
        api = airflow.api
        say(f"   up: open http://127.0.0.1:{port} in a browser to watch the runs")
        start_view(api)
        if not args.ui:
            started = time.monotonic()
            narrator = replay_loop(api, args, landing)
            say(summary(narrator, airflow.api_url, storage, env_file, settings))
            say(f"\nThe replay took {time.monotonic() - started:.0f} s on the scheduler.")
        if args.ui or args.keep_running:
            say(f"\nAirflow UI: http://127.0.0.1:{port} (Ctrl-C stops the deployment)")
            try:
                while True:
                    airflow.check_alive()
                    time.sleep(5)
            except KeyboardInterrupt:
                say("\nStopping the deployment ...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
