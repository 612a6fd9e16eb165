"""The champion comparison's rule, case by case: the primary metric with a proper scoring rule, each
within its tolerance; the single-metric rule; the minimum gain; the calibration ceiling."""

from __future__ import annotations

import math

import pytest

from airflow_mlops.core.gating.comparison import calibration_check, min_gain_check, prefer, preference_check
from airflow_mlops.core.gating.section_policies import ComparePolicy

DEFAULT = ComparePolicy.from_mapping(None)  # tolerance: primary 0.01 (roc_auc), scoring_rule 0.02 (log_loss)
CHAMPION = {"roc_auc": 0.700, "log_loss": 0.500}


@pytest.mark.parametrize(
    ("auc", "loss", "preferred", "reason"),
    [
        (0.694, 0.400, True, "better on log_loss, roc_auc within tolerance"),
        (0.710, 0.515, True, "better on roc_auc, log_loss within tolerance"),
        (0.710, 0.400, True, "better on roc_auc and on log_loss"),
        (0.685, 0.300, False, "roc_auc worse by 0.015, beyond its tolerance 0.01"),
        (0.750, 0.530, False, "log_loss worse by 0.03, beyond its tolerance 0.02"),
        (0.700, 0.500, False, "better on neither roc_auc nor log_loss: a new version would gain nothing"),
        (0.695, 0.510, False, "better on neither roc_auc nor log_loss"),
        (math.nan, 0.400, False, "roc_auc undefined on these rows"),
    ],
    ids=["calibrated-wins", "ranks-better", "both-better", "ranks-much-worse", "much-worse-loss", "tie",
         "slightly-worse-on-both", "undefined"],
)  # fmt: skip
def test_the_candidate_is_preferred_within_one_tolerance_and_better_on_the_other_metric(
    auc: float, loss: float, preferred: bool, reason: str
) -> None:
    preference = prefer(DEFAULT, "roc_auc", "log_loss", {"roc_auc": auc, "log_loss": loss}, CHAMPION)
    assert preference.preferred is preferred and preference.reason.startswith(reason)
    assert preference.rule == "primary_and_scoring_rule"
    check = preference_check(preference, DEFAULT)
    assert check.name == "non_regression:roc_auc" and check.passed is preferred
    assert check.threshold == pytest.approx(0.690)  # the champion's AUC widened by the primary tolerance
    assert ("candidate preferred" if preferred else "champion kept") in check.message


def test_the_incident_a_calibrated_candidate_beats_a_champion_whose_log_loss_collapsed() -> None:
    champion = {"roc_auc": 0.706, "log_loss": 1.42}
    preference = prefer(DEFAULT, "roc_auc", "log_loss", {"roc_auc": 0.700, "log_loss": 0.69}, champion)
    assert preference.preferred
    assert preference.gain == pytest.approx({"roc_auc": -0.006, "log_loss": 0.73})
    single = ComparePolicy.from_mapping({"proper_scoring_rule": "none", "tolerance": {"primary": 0}})
    assert not prefer(single, "roc_auc", None, {"roc_auc": 0.700, "log_loss": 0.69}, champion).preferred


def test_the_single_metric_rule_passes_ties_and_what_is_within_tolerance() -> None:
    single = ComparePolicy.from_mapping({"proper_scoring_rule": "none"})
    assert single.scoring_rule_for("binary", "roc_auc") is None
    for auc, preferred in ((0.700, True), (0.691, True), (0.689, False)):
        preference = prefer(single, "roc_auc", None, {"roc_auc": auc}, CHAMPION)
        assert preference.preferred is preferred and preference.rule == "primary_only"
    check = preference_check(prefer(single, "roc_auc", None, {"roc_auc": 0.689}, CHAMPION), single)
    assert check.message == "candidate roc_auc 0.689 vs champion 0.7 (tolerance 0.01)"  # as the gate always said
    # a scoring rule equal to the primary metric adds nothing: rmse for a regressor is judged alone
    assert DEFAULT.scoring_rule_for("regression", "rmse") is None
    assert DEFAULT.scoring_rule_for("regression", "r2") == "rmse"
    assert DEFAULT.scoring_rule_for("multiclass", "accuracy") == "log_loss"


def test_a_relative_tolerance_is_a_share_of_the_champions_value() -> None:
    relative = ComparePolicy.from_mapping({"tolerance": {"primary": "1%", "scoring_rule": "10%"}})
    preference = prefer(relative, "roc_auc", "log_loss", {"roc_auc": 0.712, "log_loss": 0.545}, CHAMPION)
    assert preference.tolerance == pytest.approx({"roc_auc": 0.007, "log_loss": 0.05})
    assert preference.preferred  # 0.045 worse on log loss is within 10% of 0.5
    assert "(tolerance 10% = 0.05)" in preference_check(preference, relative).message


def test_min_gain_is_absolute_or_relative_and_says_by_how_much_it_was_missed() -> None:
    assert min_gain_check(DEFAULT, "roc_auc", {"roc_auc": 0.9}, CHAMPION, "") is None  # 0: no check
    absolute = ComparePolicy.from_mapping({"min_gain": 0.01})
    short = min_gain_check(absolute, "roc_auc", {"roc_auc": 0.705}, CHAMPION, "")
    assert short is not None and not short.passed and short.message == "gain 0.005 below min_gain 0.01"
    relative = ComparePolicy.from_mapping({"min_gain": "2%"})
    lower_is_better = min_gain_check(relative, "log_loss", {"log_loss": 0.485}, CHAMPION, "")
    assert lower_is_better is not None and lower_is_better.passed  # 0.015 less log loss >= 2% of 0.5
    assert lower_is_better.message == "gain 0.015 reaches min_gain 0.01 (2% of the champion's log_loss 0.5)"
    first = min_gain_check(absolute, "roc_auc", {"roc_auc": 0.705}, None, "no champion")
    assert first is not None and first.status == "skipped"


def test_max_ece_is_a_ceiling_on_the_candidate_only_when_set() -> None:
    calibration = {"bins": 10, "candidate": {"ece": 0.08, "brier": 0.2}, "champion": {"ece": 0.3, "brier": 0.4}}
    assert calibration_check(DEFAULT, calibration) is None
    check = calibration_check(ComparePolicy.from_mapping({"max_ece": 0.05}), calibration)
    assert check is not None and not check.passed and check.name == "calibration:ece"
    assert check.message == "candidate expected calibration error 0.08 over 10 bins must be <= 0.05 (champion 0.3)"
