"""RegisterModelOperator and PromoteModelOperator against real MLflow: embedded store and a real server."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import Asset
from airflow.sdk.exceptions import AirflowFailException

from airflow_mlops.core import contracts
from airflow_mlops.exceptions import ModelRejected
from airflow_mlops.hooks.mlflow import MlflowHook
from airflow_mlops.links.registry import MlflowModelVersionLink
from airflow_mlops.operators.registry import (
    ModelNotPromotable,
    PromoteModelOperator,
    PromotionConflict,
    RegisterModelOperator,
)
from tests.core.registry.support import gate_receipt, training_run
from tests.operators.registry_support import TcpProxy, prepare_embedded_store, task_context

NAME = "flights_delay"


@pytest.fixture
def client(mlops_env: Path) -> Any:
    prepare_embedded_store(mlops_env)
    return MlflowHook().get_conn()


def new_run(client: Any, mlops_env: Path) -> str:
    return training_run(client, mlops_env / "mlartifacts")


def register(run_id: str, **kwargs: Any) -> RegisterModelOperator:
    return RegisterModelOperator(task_id="register", model_name=NAME, gate_receipt=gate_receipt(run_id), **kwargs)


def promote(version: str, receipt: dict[str, Any] | None, **kwargs: Any) -> PromoteModelOperator:
    return PromoteModelOperator(
        task_id="promote", model_name=NAME, pipeline="flights", version=version, gate_receipt=receipt, **kwargs
    )


def aliases(client: Any) -> dict[str, str]:
    return {k: str(v) for k, v in client.get_registered_model(NAME).aliases.items()}


# -- register ---------------------------------------------------------------------------------------------
def test_register_returns_a_receipt_and_a_retry_returns_the_same_version(client: Any, mlops_env: Path) -> None:
    run_id = new_run(client, mlops_env)
    context = task_context("register")
    receipt = register(run_id, alias="challenger").execute(context)
    assert receipt["name"] == NAME and receipt["version"] == "1" and receipt["run_id"] == run_id
    assert receipt["created"] and receipt["alias"] == "challenger" and receipt["status"] == "READY"
    assert receipt["onnx_sha256"] == client.get_run(run_id).data.tags[contracts.TAG_ONNX_SHA256]
    assert receipt["gate_evidence_uri"].endswith(f"{run_id}/decision.json")
    assert receipt["url"] == f"http://127.0.0.1:5000/#/models/{NAME}/versions/1"
    assert context["ti"].pushed[MlflowModelVersionLink.key] == {"name": NAME, "version": "1"}  # ids, no address
    assert aliases(client) == {"challenger": "1"}
    experiment = client.get_run(run_id).info.experiment_id
    card = f"http://127.0.0.1:5000/#/experiments/{experiment}/runs/{run_id}/artifacts/gate/model_card.html"
    assert f"**[Model card]({card})**" in client.get_model_version(NAME, "1").description
    json.dumps(receipt)  # small and JSON-able, as XCom wants
    retry = register(run_id, alias="challenger").execute(task_context("register"))
    assert retry["version"] == "1" and not retry["created"]
    assert len(client.search_model_versions(f"name = '{NAME}'")) == 1


def test_register_accepts_a_receipt_rendered_into_a_string(client: Any, mlops_env: Path) -> None:
    run_id = new_run(client, mlops_env)
    as_json = RegisterModelOperator(task_id="r", model_name=NAME, gate_receipt=json.dumps(gate_receipt(run_id)))
    assert as_json.execute(task_context())["version"] == "1"
    as_repr = RegisterModelOperator(task_id="r", model_name=NAME, gate_receipt=str(gate_receipt(run_id)))
    assert as_repr.execute(task_context())["version"] == "1"
    ungated = RegisterModelOperator(task_id="r", model_name=NAME, run_id=new_run(client, mlops_env), require_gate=False)
    result = ungated.execute(task_context())
    assert result["version"] == "2"
    assert client.get_model_version(NAME, "2").tags.get(contracts.TAG_GATE_PASSED) is None


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"gate_receipt": "passed"}, AirflowFailException, "must be the receipt of EvaluateModelGateOperator"),
        ({"gate_receipt": None}, AirflowFailException, r"needs the gate's receipt \(gate_receipt=gate.output\)"),
        ({"run_id": "0" * 32}, AirflowFailException, "refusing to register it"),
        ({"alias": "champion"}, AirflowFailException, "does not set 'champion'"),
    ],
    ids=["not-a-receipt", "no-receipt", "other-run", "champion-alias"],
)
def test_register_refuses_bad_arguments(
    client: Any, mlops_env: Path, change: dict[str, Any], error: type[Exception], message: str
) -> None:
    run_id = new_run(client, mlops_env)
    operator = register(run_id)
    for key, value in change.items():
        setattr(operator, key, value)
    with pytest.raises(error, match=message):
        operator.execute(task_context())
    assert client.search_model_versions(f"name = '{NAME}'") == []


def test_register_refuses_a_rejected_candidate_and_an_untrained_run(client: Any, mlops_env: Path) -> None:
    run_id = new_run(client, mlops_env)
    rejected = RegisterModelOperator(task_id="r", model_name=NAME, gate_receipt=gate_receipt(run_id, passed=False))
    with pytest.raises(ModelRejected, match=f"The gate rejected run {run_id}"):
        rejected.execute(task_context())
    assert issubclass(ModelRejected, AirflowFailException)  # no retry for a verdict
    bare = client.create_run(client.get_experiment_by_name("flights").experiment_id).info.run_id
    with pytest.raises(AirflowFailException, match=r"has no 'mlops\.onnx_sha256' tag"):
        register(bare).execute(task_context())
    with pytest.raises(AirflowFailException, match=r"There is no MLflow run 'f+'"):
        RegisterModelOperator(task_id="r", model_name=NAME, run_id="f" * 32, require_gate=False).execute(task_context())
    assert client.search_model_versions(f"name = '{NAME}'") == []


# -- promote ----------------------------------------------------------------------------------------------
def test_promotion_moves_champion_keeps_previous_and_emits_the_model_asset(client: Any, mlops_env: Path) -> None:
    old, new = new_run(client, mlops_env), new_run(client, mlops_env)
    register(old).execute(task_context())
    register(new, alias="challenger").execute(task_context())
    operator = promote("1", gate_receipt(old))
    asset = Asset(name="x-mlops://flights/model", uri="x-mlops://flights/model")
    assert operator.outlets == [asset]
    context = task_context("promote")
    first = operator.execute(context)
    assert first["version"] == "1" and first["previous_version"] is None and first["changed"]
    second_context = task_context("promote", run_id="scheduled__2013-05-01")
    second = promote("2", gate_receipt(new, champion_version="1")).execute(second_context)
    assert (second["version"], second["previous_version"], second["alias"]) == ("2", "1", "champion")
    assert second["model_uri"] == f"models:/{NAME}@champion"
    assert aliases(client) == {"champion": "2", "previous_champion": "1"}  # the challenger alias is cleared
    assert second_context["outlet_events"][asset].extra == {
        "name": NAME, "alias": "champion", "version": "2", "previous_version": "1", "mode": "promote",
        "changed": True, "model_uri": f"models:/{NAME}@champion",
    }  # fmt: skip
    assert second_context["ti"].pushed[MlflowModelVersionLink.key] == {"name": NAME, "version": "2"}
    # a retry of the same task instance after it succeeded does not fail and moves nothing
    retry = promote("2", gate_receipt(new, champion_version="1")).execute(second_context)
    assert not retry["changed"] and retry["previous_version"] == "1"


def test_a_stale_gate_receipt_fails_clearly_without_changing_anything(client: Any, mlops_env: Path) -> None:
    runs = [new_run(client, mlops_env) for _ in range(3)]
    for run_id in runs:
        register(run_id).execute(task_context())
    promote("1", gate_receipt(runs[0])).execute(task_context())
    promote("2", gate_receipt(runs[1], champion_version="1")).execute(task_context(run_id="b"))
    stale = promote("3", gate_receipt(runs[2], champion_version="1"))  # evaluated against version 1
    with pytest.raises(PromotionConflict, match="points at version 2, but this promotion expected version 1"):
        stale.execute(task_context(run_id="c"))
    assert issubclass(PromotionConflict, AirflowFailException)
    assert aliases(client) == {"champion": "2", "previous_champion": "1"}
    with pytest.raises(ModelNotPromotable, match="refusing to promote what was not gated"):
        promote("3", gate_receipt(runs[0], champion_version="2")).execute(task_context(run_id="d"))
    with pytest.raises(ModelRejected):
        promote("3", gate_receipt(runs[2], passed=False, champion_version="2")).execute(task_context(run_id="e"))
    with pytest.raises(AirflowFailException, match=r"needs the gate's receipt .* or expected_champion_version"):
        promote("3", None).execute(task_context(run_id="f"))
    manual = promote("3", None, expected_champion_version="any").execute(task_context(run_id="g"))
    assert manual["version"] == "3" and manual["previous_version"] == "2"


def test_rollback_mode_promotes_the_previous_champion(client: Any, mlops_env: Path) -> None:
    runs = [new_run(client, mlops_env) for _ in range(2)]
    for run_id in runs:
        register(run_id).execute(task_context())
    promote("1", gate_receipt(runs[0])).execute(task_context())
    promote("2", gate_receipt(runs[1], champion_version="1")).execute(task_context(run_id="b"))
    rollback = PromoteModelOperator(task_id="rollback", model_name=NAME, pipeline="flights", mode="rollback")
    context = task_context("rollback", run_id="incident")
    receipt = rollback.execute(context)
    assert (receipt["version"], receipt["previous_version"], receipt["mode"]) == ("1", "2", "rollback")
    assert aliases(client) == {"champion": "1", "previous_champion": "2"}
    assert rollback.execute(context)["changed"] is False  # a retry does not swap back
    with pytest.raises(AirflowFailException, match="'mode' of PromoteModelOperator must be 'promote' or 'rollback'"):
        PromoteModelOperator(task_id="x", model_name=NAME, pipeline="flights", mode="demote").execute(task_context())


# -- against a real tracking server -----------------------------------------------------------------------
def _use_server(monkeypatch: pytest.MonkeyPatch, url: str) -> Any:
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps({"conn_type": "mlflow", "host": url}))
    return MlflowHook().get_conn()


def test_registry_unreachable_mid_way_leaves_no_half_registered_version_and_no_moved_alias(
    mlflow_server, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """The registry becomes unreachable right after creating the version; once back, the retry completes it."""
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # fail fast instead of two minutes of backoff
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    network = TcpProxy(int(mlflow_server.url.rsplit(":", 1)[1]))
    client = _use_server(monkeypatch, network.url)
    name = "unreachable_flights"
    champion_run, candidate_run = training_run(client, experiment=name), training_run(client, experiment=name)
    common = {"model_name": name, "pipeline": "flights"}
    RegisterModelOperator(task_id="r", model_name=name, gate_receipt=gate_receipt(champion_run)).execute(task_context())
    PromoteModelOperator(task_id="p", version="1", gate_receipt=gate_receipt(champion_run), **common).execute(
        task_context()
    )
    real_create = MlflowClient.create_model_version

    def create_then_cut(self: Any, *args: Any, **kwargs: Any) -> Any:
        created = real_create(self, *args, **kwargs)
        network.cut()  # the registry goes away between creating the version and marking it complete
        return created

    monkeypatch.setattr(MlflowClient, "create_model_version", create_then_cut)
    candidate = RegisterModelOperator(task_id="r", model_name=name, gate_receipt=gate_receipt(candidate_run))
    with pytest.raises(Exception) as failure:  # a transient error: Airflow retries the task
        candidate.execute(task_context())
    assert not isinstance(failure.value, AirflowFailException)
    monkeypatch.setattr(MlflowClient, "create_model_version", real_create)
    promotion = PromoteModelOperator(
        task_id="p", version="2", gate_receipt=gate_receipt(candidate_run, champion_version="1"), **common
    )
    with pytest.raises(Exception):  # noqa: B017 - whatever the connection error, nothing may move
        promotion.execute(task_context(run_id="while-down"))

    network.restore()
    (half,) = [v for v in client.search_model_versions(f"name = '{name}'") if str(v.version) == "2"]
    assert contracts.TAG_REGISTRATION_COMPLETE not in half.tags  # visibly unfinished, and so refused:
    with pytest.raises(ModelNotPromotable, match="registration did not finish"):
        promotion.execute(task_context(run_id="early"))
    assert {k: str(v) for k, v in client.get_registered_model(name).aliases.items()} == {"champion": "1"}
    retry = candidate.execute(task_context())
    assert (retry["version"], retry["created"], retry["completed"]) == ("2", False, True)
    assert sorted(str(v.version) for v in client.search_model_versions(f"name = '{name}'")) == ["1", "2"]
    promoted = promotion.execute(task_context(run_id="b"))
    assert promoted["changed"]
    final = {k: str(v) for k, v in client.get_registered_model(name).aliases.items()}
    assert final == {"champion": "2", "previous_champion": "1"}
    network.cut()


def test_two_concurrent_promotions_end_in_one_consistent_state(mlflow_server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Both gates evaluated against version 1; both promote at once; exactly one wins, the other fails clearly."""
    client = _use_server(monkeypatch, mlflow_server.url)
    name = "concurrent_" + threading.current_thread().name.replace("-", "_")
    runs = [training_run(client, experiment="concurrent") for _ in range(3)]
    for run_id in runs:
        RegisterModelOperator(task_id="r", model_name=name, gate_receipt=gate_receipt(run_id)).execute(task_context())
    common = {"model_name": name, "pipeline": "flights"}
    PromoteModelOperator(task_id="p", version="1", gate_receipt=gate_receipt(runs[0]), **common).execute(task_context())
    outcomes: dict[str, Any] = {}
    start = threading.Barrier(2)

    def attempt(version: str) -> None:
        operator = PromoteModelOperator(
            task_id="p", version=version, gate_receipt=gate_receipt(runs[int(version) - 1], champion_version="1"),
            **common,
        )  # fmt: skip
        start.wait()
        try:
            outcomes[version] = operator.execute(task_context(run_id=f"run-{version}"))
        except Exception as exc:
            outcomes[version] = exc

    threads = [threading.Thread(target=attempt, args=(v,)) for v in ("2", "3")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    winners = [v for v, o in outcomes.items() if isinstance(o, dict)]
    losers = [o for o in outcomes.values() if not isinstance(o, dict)]
    assert len(winners) == 1 and len(losers) == 1, outcomes
    assert isinstance(losers[0], PromotionConflict)
    assert f"points at version {winners[0]}, but this promotion expected version 1" in str(losers[0])
    final = {k: str(v) for k, v in client.get_registered_model(name).aliases.items()}
    assert final == {"champion": winners[0], "previous_champion": "1"}
    assert client.search_registered_models(f"name = '{name}.mlops-lock'") == []
