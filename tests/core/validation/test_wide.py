"""GX runs column by column (``run_gx``): the same results and verdicts as one GX run on the whole frame,
on a good table and on a bad one."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.core import validation as v
from airflow_mlops.core.validation.gx import import_gx
from airflow_mlops.core.validation.run import classify, run_gx
from tests.support.data import flights

KEYS = ("sched_dep_ts", "time_hour")


def _whole_frame_gx(frame: pd.DataFrame, suite: Any) -> Any:
    """GX as its documentation shows it: one batch over the whole frame, the suite validated on it."""
    gx = import_gx()
    context = gx.get_context(mode="ephemeral")
    batch = (
        context.data_sources.add_pandas("plain").add_dataframe_asset("frame")
        .add_batch_definition_whole_dataframe("whole").get_batch(batch_parameters={"dataframe": frame})
    )  # fmt: skip
    return batch.validate(suite, result_format="SUMMARY")


def _bad(frame: pd.DataFrame) -> pd.DataFrame:
    """Every kind of trouble at once: a column gone, one new, one retyped, nulls where there were none,
    values out of range, an unseen category, a flag rate moved."""
    bad = frame.drop(columns=["minute"]).assign(extra=1)
    bad["flight"] = bad["flight"].astype(str)
    bad.loc[bad.index[:50], "distance"] = np.nan
    bad.loc[bad.index[50:400], "dep_delay"] = 5000
    bad.loc[bad.index[400:420], "origin"] = "BOS"
    bad["cancelled"] = (np.arange(len(bad)) % 3 == 0).astype("int8")
    return bad


@pytest.fixture(scope="module")
def suite_and_frames() -> tuple[Any, pd.DataFrame, pd.DataFrame]:
    reference = flights([3], sample=3000)
    suite = v.infer_suite(reference, v.InferenceSpec(schema_only_columns=KEYS), name="wide")
    current = flights([4], sample=3000)
    return suite, current, _bad(current)


def _outcome(result: Any) -> list[str]:
    """Each expectation's result, as text (NaN equals NaN there); GX orders a suite's results its own
    way, so they are compared as a sorted list."""
    return sorted([repr(
        (r.expectation_config.type, dict(r.expectation_config.kwargs).get("column"), r.success,
         {k: val for k, val in (r.result or {}).items()}, r.exception_info.get("raised_exception")))
        for r in result.results
    ])  # fmt: skip


@pytest.mark.parametrize("which", ["good", "bad"])
def test_column_by_column_gives_the_whole_frame_results_and_verdict(
    suite_and_frames: tuple[Any, pd.DataFrame, pd.DataFrame], which: str
) -> None:
    suite, good, bad = suite_and_frames
    frame = good if which == "good" else bad
    ours, plain = run_gx(frame, suite), _whole_frame_gx(frame, suite)
    assert _outcome(ours) == _outcome(plain)
    assert ours.statistics == plain.statistics and ours.success == plain.success
    mine, theirs = classify(frame, suite, ours), classify(frame, suite, plain)
    assert (mine.passed, mine.severity, mine.counts, mine.evaluated, mine.succeeded) == (
        theirs.passed, theirs.severity, theirs.counts, theirs.evaluated, theirs.succeeded,
    )  # fmt: skip
    assert mine.failures == theirs.failures
    if which == "bad":  # the bad table is caught, for the reasons planted
        assert mine.severity == "error" and mine.counts["schema"] >= 3 and mine.counts["value"] >= 3
        assert {f.column for f in mine.failures} >= {"minute", "flight", "distance", "dep_delay", "origin"}
