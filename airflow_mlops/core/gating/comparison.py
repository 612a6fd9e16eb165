"""The candidate against the champion on the primary metric, together with a proper scoring rule.

A ranking metric alone (ROC AUC) cannot see a model whose probabilities went wrong while its ranking
held: a champion whose log loss rose from 0.40 to 1.42 (recall 0.035) was kept over a candidate with a
log loss of 0.69, because the candidate's AUC was 0.006 lower. So the gate judges the primary metric
``P`` together with a proper scoring rule ``S`` (``log_loss`` for classifiers, ``rmse`` for regressors).
With the candidate's gains over the champion ``dP`` and ``dS`` (positive when the candidate is better,
whatever the metric's direction) and the tolerances ``tP`` and ``tS`` (``compare.tolerance``), the
candidate is **preferred** when

    (dP >= -tP and dS > 0)  or  (dP > 0 and dS >= -tS)

that is: not worse beyond its tolerance on one metric and strictly better on the other. A candidate
that is better on neither is not preferred (a new version would gain nothing); one that is worse
beyond a tolerance on either is not preferred, however much it gains on the other. With no scoring
rule (``compare.proper_scoring_rule: none``, or a rule equal to the primary metric) the primary metric
is judged alone: ``dP >= -tP`` (ties pass), the gate's single-metric rule.

``compare.min_gain`` is a separate check (``min_gain:<primary>``): the candidate must beat the champion
on the primary metric by at least that margin (``dP >= min_gain``) to replace it.

Brier score and expected calibration error (:mod:`airflow_mlops.core.calibration`) are reported for
both classifiers; they decide nothing unless ``compare.max_ece`` sets a ceiling.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.calibration import expected_calibration_error, multiclass_brier
from airflow_mlops.core.gating import metrics as gm
from airflow_mlops.core.gating.decision import Check, _fmt

if TYPE_CHECKING:
    import numpy as np

    from airflow_mlops.core.gating.section_policies import ComparePolicy


@dataclass(frozen=True)
class Preference:
    """Whether the candidate is preferred to the champion, and the figures it rests on.

    :ivar primary: the primary metric; ``scoring_rule`` the second one, None when judged alone.
    :ivar gain: per metric, how much better the candidate is (negative: worse), in metric units.
    :ivar tolerance: per metric, how much worse it may be, in metric units (a relative tolerance is
        resolved against the champion's value).
    :ivar reason: why it is (or is not) preferred, in words.
    """

    primary: str
    scoring_rule: str | None
    candidate: dict[str, float]
    champion: dict[str, float]
    gain: dict[str, float]
    tolerance: dict[str, float]
    preferred: bool
    reason: str

    @property
    def rule(self) -> str:
        return "primary_only" if self.scoring_rule is None else "primary_and_scoring_rule"

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "primary": self.primary,
            "scoring_rule": self.scoring_rule,
            "candidate": dict(self.candidate),
            "champion": dict(self.champion),
            "gain": dict(self.gain),
            "tolerance": dict(self.tolerance),
            "preferred": self.preferred,
            "reason": self.reason,
        }


def prefer(
    policy: ComparePolicy,
    primary: str,
    scoring_rule: str | None,
    candidate: Mapping[str, float],
    champion: Mapping[str, float],
) -> Preference:
    """Apply the comparison rule (module docstring) to both models' metrics on the same rows."""
    names = (primary,) if scoring_rule is None else (primary, scoring_rule)
    margins = {primary: policy.tolerance_primary}
    if scoring_rule is not None:
        margins[scoring_rule] = policy.tolerance_scoring_rule
    tolerance = {name: margins[name].of(champion[name]) for name in names}
    gain = {name: gm.METRICS[name].improvement(candidate[name], champion[name]) for name in names}
    preferred, reason = _decide(primary, scoring_rule, gain, tolerance)
    return Preference(
        primary=primary,
        scoring_rule=scoring_rule,
        candidate={name: candidate[name] for name in names},
        champion={name: champion[name] for name in names},
        gain=gain,
        tolerance=tolerance,
        preferred=preferred,
        reason=reason,
    )


def _decide(
    primary: str, scoring_rule: str | None, gain: Mapping[str, float], tolerance: Mapping[str, float]
) -> tuple[bool, str]:
    undefined = [name for name, value in gain.items() if math.isnan(value)]
    if undefined:
        return False, f"{', '.join(undefined)} undefined on these rows"
    gain_p, tol_p = gain[primary], tolerance[primary]
    if scoring_rule is None:
        if gain_p >= -tol_p:
            return True, f"{primary} within tolerance"
        return False, f"{primary} worse by {_fmt(-gain_p)}, beyond its tolerance {_fmt(tol_p)}"
    gain_s, tol_s = gain[scoring_rule], tolerance[scoring_rule]
    if gain_p > 0 and gain_s > 0:
        return True, f"better on {primary} and on {scoring_rule}"
    if gain_p >= -tol_p and gain_s > 0:
        return True, f"better on {scoring_rule}, {primary} within tolerance"
    if gain_p > 0 and gain_s >= -tol_s:
        return True, f"better on {primary}, {scoring_rule} within tolerance"
    if gain_p < -tol_p:
        return False, f"{primary} worse by {_fmt(-gain_p)}, beyond its tolerance {_fmt(tol_p)}"
    if gain_s < -tol_s:
        return False, f"{scoring_rule} worse by {_fmt(-gain_s)}, beyond its tolerance {_fmt(tol_s)}"
    return False, f"better on neither {primary} nor {scoring_rule}: a new version would gain nothing"


def preference_check(preference: Preference, policy: ComparePolicy) -> Check:
    """``non_regression:<primary>``: the comparison's verdict, observed on the primary metric against the
    champion's value widened by its tolerance."""
    primary = preference.primary
    spec = gm.METRICS[primary]
    bound = spec.shift_worse(preference.champion[primary], preference.tolerance[primary])
    parts = [_versus(primary, preference, str(policy.tolerance_primary))]
    if preference.scoring_rule is None:
        message = parts[0]  # the single-metric rule reads as it always did
    else:
        parts.append(_versus(preference.scoring_rule, preference, str(policy.tolerance_scoring_rule)))
        verdict = "candidate preferred" if preference.preferred else "champion kept"
        message = f"{'; '.join(parts)}: {verdict}, {preference.reason}"
    return Check(
        f"non_regression:{primary}",
        "passed" if preference.preferred else "failed",
        preference.candidate[primary],
        bound,
        message,
    )


def _versus(name: str, preference: Preference, margin: str) -> str:
    resolved = _fmt(preference.tolerance[name])
    tolerance = margin if resolved == margin else f"{margin} = {resolved}"
    return (
        f"candidate {name} {_fmt(preference.candidate[name])} vs champion {_fmt(preference.champion[name])} "
        f"(tolerance {tolerance})"
    )


def min_gain_check(
    policy: ComparePolicy, primary: str, candidate: Mapping[str, float], champion: Mapping[str, float] | None, why: str
) -> Check | None:
    """``min_gain:<primary>``: the candidate beats the champion by at least ``compare.min_gain``; None
    when no minimum gain is set; skipped (for ``why``) when there is no champion to beat."""
    margin = policy.min_gain
    if margin.value == 0:
        return None
    name = f"min_gain:{primary}"
    if champion is None:
        return Check(name, "skipped", None, None, why)
    required = margin.of(champion[primary])
    gain = gm.METRICS[primary].improvement(candidate[primary], champion[primary])
    ok = not math.isnan(gain) and gain >= required
    of_what = f" ({margin} of the champion's {primary} {_fmt(champion[primary])})" if margin.relative else ""
    message = f"gain {_fmt(gain)} {'reaches' if ok else 'below'} min_gain {_fmt(required)}{of_what}"
    return Check(name, "passed" if ok else "failed", gain, required, message)


def calibration_of(task: gm.Task, y: np.ndarray, prediction: np.ndarray, bins: int) -> dict[str, float] | None:
    """A classifier's Brier score (positive class for binary models, summed over classes for multiclass
    ones) and expected calibration error; None for a regressor."""
    if task == "regression":
        return None
    brier = gm.compute("brier", y, prediction) if task == "binary" else multiclass_brier(y, prediction)
    return {"brier": brier, "ece": expected_calibration_error(y, prediction, bins=bins)}


def calibration_check(policy: ComparePolicy, calibration: Mapping[str, Any] | None) -> Check | None:
    """``calibration:ece``: the candidate's expected calibration error under ``compare.max_ece``, when set."""
    if policy.max_ece is None or calibration is None:
        return None
    ece = calibration["candidate"]["ece"]
    ok = not math.isnan(ece) and ece <= policy.max_ece
    champion = calibration.get("champion")
    message = (
        f"candidate expected calibration error {_fmt(ece)} over {calibration['bins']} bins must be <= "
        f"{policy.max_ece:g}" + ("" if champion is None else f" (champion {_fmt(champion['ece'])})")
    )
    return Check("calibration:ece", "passed" if ok else "failed", ece, policy.max_ece, message)
