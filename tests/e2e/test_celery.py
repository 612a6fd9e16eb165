"""Mapped scoring partitions executed by a Celery worker: the distributed engine of a production deployment.

The scheduler runs with CeleryExecutor on the local Redis (broker, a database number of its own) and
PostgreSQL (metadata and Celery results); the test starts one ``airflow celery worker`` serving a
queue of its own, so no other worker on the machine can take the tasks and no other test's tasks
reach this worker. ``mlops_e2e_scoring`` resolves the champion once, lists the partitions and maps
``ScoreBatchOperator`` over them; every mapped task must have gone through the queue and the worker.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Deployment, MlopsStack
from tests.support.airflow_services import AirflowServices

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
# Database 0 is everybody's default; this test keeps to its own number and its own queue name.
REDIS_DB = 13
QUEUE = f"mlops-e2e-{uuid.uuid4().hex[:8]}"
WORKER = f"{QUEUE}@localhost"
MODEL = "e2e_flights_delay"
PIPELINE = "e2e_flights"
MONTHS = ("2013-02", "2013-03", "2013-04")
SCORING = "mlops_e2e_scoring"

AIRFLOW_DEPLOYMENT = Deployment(
    dags_folder=Path(__file__).parent / "dags",
    executor="CeleryExecutor",
    components=("scheduler", "dag-processor"),
    extra_env={
        "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}",
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": QUEUE,
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
    },
)


def _redis() -> object:
    import redis

    return redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB, socket_connect_timeout=3)


@pytest.fixture(scope="module")
def redis_broker() -> None:
    """Skip, before anything is started, when the broker is not there."""
    import redis

    try:
        _redis().ping()  # type: ignore[attr-defined]
    except redis.RedisError as exc:
        pytest.skip(f"no Redis on {REDIS_HOST}:{REDIS_PORT} ({exc}): the Celery broker is needed for this test")


@pytest.fixture(scope="module")
def airflow_extra_env(redis_broker: None, mlops_stack: MlopsStack, airflow_database: str) -> dict[str, str]:
    """Register a champion on the MLflow server and land three monthly partitions."""
    from mlflow import MlflowClient

    from tests.support import models
    from tests.support.data import flights

    client = MlflowClient(mlops_stack.mlflow.url, registry_uri=mlops_stack.mlflow.url)
    experiment_id = client.create_experiment("e2e-celery")
    models.register(client, models.flights_classifier("lightgbm"), MODEL, experiment_id=experiment_id)
    landing = mlops_stack.workdir / "partitions"
    landing.mkdir()
    for month in MONTHS:
        flights(months=[int(month[-2:])], sample=1500).to_parquet(landing / f"{month}.parquet", index=False)
    return {
        "MLOPS_E2E_PARTITIONS": str(landing),
        # Celery results live beside the metadata, as in docker-compose.yaml.
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + airflow_database,
    }


@pytest.fixture(scope="module")
def worker(airflow: AirflowServices) -> Iterator[AirflowServices]:
    """One Celery worker on the test's queue; its keys are removed from Redis afterwards."""
    airflow.start(
        "celery-worker", "celery", "worker", "-q", QUEUE, "-H", WORKER, "--without-gossip", "--without-mingle"
    )
    yield airflow
    airflow.stop()  # the worker and the scheduler first, so that nobody declares the queue again
    redis = _redis()
    # The queue's list and bindings, and kombu's own bookkeeping in this database number.
    for pattern in (f"*{QUEUE}*", "_kombu.binding_deadlines"):
        for key in redis.scan_iter(match=pattern):  # type: ignore[attr-defined]
            redis.delete(key)  # type: ignore[attr-defined]


def test_mapped_scoring_partitions_run_on_the_celery_worker(worker: AirflowServices, mlops_stack: MlopsStack) -> None:
    api = worker.api
    api.wait_for_dag(SCORING)
    api.unpause(SCORING)
    run_id = api.trigger(SCORING)
    api.wait_for_run(SCORING, run_id, timeout=300)

    scored = [ti for ti in api.task_instances(SCORING, run_id) if ti["task_id"] == "score"]
    assert sorted(ti["map_index"] for ti in scored) == list(range(len(MONTHS))), scored
    assert {ti["state"] for ti in scored} == {"success"}, scored
    assert {ti["queue"] for ti in scored} == {QUEUE}, scored
    # The worker logs each workload it takes from the queue, with the task instance's id.
    taken = [line for line in worker.log_text("celery-worker").splitlines() if "Executing workload in Celery" in line]
    for ti in scored:
        assert any(ti["id"] in line and f"task_id=score/map_index={ti['map_index']}/" in line for line in taken), (
            f"the Celery worker never took score[{ti['map_index']}] ({ti['id']})\n{worker.log_tails(80)}"
        )
    for month in MONTHS:
        assert (mlops_stack.storage_root / PIPELINE / "predictions" / month / "predictions.parquet").is_file()
