"""What a new model version carries besides its files: lineage tags, the gate's verdict, a description."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_mlops.core import contracts


def registration_tags(run_tags: Mapping[str, str], run_id: str, gate: Mapping[str, Any] | None) -> dict[str, str]:
    """Tags for a new version: the run's ``mlops.*`` lineage, its source run and the gate's verdict."""
    tags = {k: str(v) for k, v in run_tags.items() if k.startswith(contracts.TAG_PREFIX)}
    tags.pop(contracts.TAG_REGISTRATION_COMPLETE, None)
    tags[contracts.TAG_SOURCE_RUN_ID] = run_id
    if gate is not None:
        tags[contracts.TAG_GATE_PASSED] = "true" if gate.get("passed") else "false"
        tags[contracts.TAG_GATE_VERDICT] = str(gate.get("verdict") or ("passed" if gate.get("passed") else "rejected"))
        if gate.get("evidence_uri"):
            tags[contracts.TAG_GATE_EVIDENCE_URI] = str(gate["evidence_uri"])
        tags[contracts.TAG_GATE_CHAMPION_VERSION] = str(gate.get("champion_version") or "none")
    return tags


def model_card_url(ui_url: str, experiment_id: str, run_id: str, artifact_uri: str) -> str:
    """Where people open a gated run's model card (``gate/model_card.html``, logged on the run by the gate):
    the MLflow UI's view of that artifact when the UI's address is known (the HTML renders there, plots
    included), else the card's own artifact URI (``mlflow-artifacts:/...``, ``s3://...``)."""
    if ui_url:
        run = f"{ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
        return f"{run}/artifacts/{contracts.ARTIFACT_MODEL_CARD}"
    return f"{artifact_uri.rstrip('/')}/{contracts.ARTIFACT_MODEL_CARD}"


def version_description(run_id: str, gate: Mapping[str, Any] | None, card_url: str | None = None) -> str:
    """Markdown shown on the version's page: where it came from, what the gate found, and a link to
    the model card (``card_url``, see :func:`model_card_url`)."""
    lines = [f"Registered from MLflow run `{run_id}`."]
    if gate is None:
        return "\n".join([*lines, "", "No gate evidence was attached."])
    verdict = str(gate.get("verdict") or ("passed" if gate.get("passed") else "rejected"))
    lines += ["", f"**Gate: {verdict}**" + (f" (forced: {gate.get('force_reason')})" if gate.get("forced") else "")]
    champion = gate.get("champion_version")
    lines.append(f"Compared with champion version {champion}." if champion else "First model: no champion to compare.")
    candidate, reference = gate.get("candidate_metrics") or {}, gate.get("champion_metrics") or {}
    primary = gate.get("primary_metric")
    if primary and primary in candidate:
        ref = reference.get(primary)
        lines.append(
            f"{primary}: {_short(candidate[primary])}" + (f" (champion {_short(ref)})" if ref is not None else "")
        )
    failed = [r.get("name") for r in gate.get("reasons") or [] if isinstance(r, Mapping) and not r.get("passed", True)]
    if failed:
        lines.append("Failed checks: " + ", ".join(map(str, failed)))
    if card_url:
        lines += ["", f"**[Model card]({card_url})**: the gate's metrics and checks, and the training plots."]
    if gate.get("evidence_uri"):
        lines += ["", f"Evidence: `{gate['evidence_uri']}`"]
    return "\n".join(lines)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
