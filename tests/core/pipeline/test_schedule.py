"""Serving schedules: every accepted form parses to its batch DAG, anything else is refused naming file and value."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.pipeline.file import PipelineFile
from airflow_mlops.core.pipeline.schedule import ServingSchedule, batch_dags, parse_schedule

REPO = Path(__file__).resolve().parents[3]
WHERE = "include/pipelines/p.yaml: serving.schedule"


@pytest.mark.parametrize(
    ("raw", "kind", "value", "dag_id"),
    [
        ("@monthly", "cron", "0 0 1 * *", "batch_serving"),
        ("0 0 1 * *", "cron", "0 0 1 * *", "batch_serving"),
        ("@hourly", "cron", "0 * * * *", "batch_serving_hourly"),
        ("@daily", "cron", "0 0 * * *", "batch_serving_daily"),
        ("@weekly", "cron", "0 0 * * 0", "batch_serving_weekly"),
        ("@Quarterly", "cron", "0 0 1 */3 *", "batch_serving_quarterly"),
        ("@yearly", "cron", "0 0 1 1 *", "batch_serving_yearly"),
        ("0 6 * * 1-5", "cron", "0 6 * * 1-5", "batch_serving_cron_0_6_x_x_1-5"),
        (" */15  *  * * * ", "cron", "*/15 * * * *", "batch_serving_cron_xs15_x_x_x_x"),
        ("0 0,12 * * MON", "cron", "0 0,12 * * MON", "batch_serving_cron_0_0.12_x_x_mon"),
        ("P7D", "delta", "604800", "batch_serving_every_7d"),
        ("P1W", "delta", "604800", "batch_serving_every_7d"),
        ("PT6H", "delta", "21600", "batch_serving_every_6h"),
        ("p1dt12h30m", "delta", "131400", "batch_serving_every_1d12h30m"),
        ("x-mlops://flights_delay/dataset", "asset", "x-mlops://flights_delay/dataset",
         "batch_serving_on_x-mlops_flights_delay_dataset"),
        ("s3://raw/flights/", "asset", "s3://raw/flights/", "batch_serving_on_s3_raw_flights"),
    ],
    ids=[
        "monthly", "monthly-cron", "hourly", "daily", "weekly", "quarterly", "yearly", "cron", "cron-step",
        "cron-names", "days", "weeks", "hours", "mixed", "asset", "s3-asset",
    ],
)  # fmt: skip
def test_accepted_schedules_parse_to_their_batch_dag(raw: str, kind: str, value: str, dag_id: str) -> None:
    schedule = parse_schedule(raw, WHERE)
    assert (schedule.kind, schedule.value, schedule.text) == (kind, value, raw.strip())
    assert schedule.dag_id == dag_id
    assert schedule.has_data_interval is (kind != "asset")


def test_a_duration_schedule_has_its_interval() -> None:
    assert parse_schedule("P1DT6H", WHERE).interval == timedelta(days=1, hours=6)
    with pytest.raises(SpecError, match="is a cron schedule, not a duration"):
        _ = parse_schedule("@daily", WHERE).interval


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("@fortnightly", "Got '@fortnightly' instead"),
        ("@once", "Got '@once' instead"),
        ("0 0 1 *", r"Got '0 0 1 \*' instead"),
        ("0 0 0 0 0 0", r"Got '0 0 0 0 0 0' instead"),
        ("61 * * * *", r"Got '61 \* \* \* \*' instead"),
        ("P1M", "'P1M' has years or months, which have no fixed length"),
        ("P1Y2D", "'P1Y2D' has years or months"),
        ("PT0S", "the duration 'PT0S' is zero"),
        ("P", "Got 'P' instead"),
        ("P1DT", "Got 'P1DT' instead"),
        ("every week", "Got 'every week' instead"),
        ("", "Got '' instead"),
        (7, "Got 7 instead"),
        ({"days": 7}, r"Got \{'days': 7\} instead"),
    ],
    ids=[
        "unknown-preset", "once", "four-fields", "six-fields", "out-of-range", "months", "years", "zero",
        "empty-duration", "empty-time", "words", "empty", "number", "mapping",
    ],
)  # fmt: skip
def test_unsupported_schedules_are_refused_naming_the_file_value_and_accepted_forms(raw: object, message: str) -> None:
    with pytest.raises(SpecError, match=message) as raised:
        parse_schedule(raw, WHERE)
    assert str(raised.value).startswith("include/pipelines/p.yaml: ")
    assert "@quarterly" in str(raised.value) and "'P7D'" in str(raised.value)  # what is accepted


def test_a_pipeline_file_with_a_bad_schedule_is_refused_when_read(tmp_path: Path) -> None:
    path = tmp_path / "include" / "pipelines" / "rentals.yaml"
    path.parent.mkdir(parents=True)
    path.write_text("training: {}\nserving:\n  schedule: '@biweekly'\n")
    with pytest.raises(SpecError, match=r"rentals\.yaml: serving\.schedule must be a preset .* Got '@biweekly'"):
        PipelineFile.from_yaml(path)


def test_a_pipeline_file_reads_its_schedule() -> None:
    raw = {"training": {}, "serving": {"schedule": "@weekly"}}
    pipeline = PipelineFile.from_mapping("p", raw, path=Path("p.yaml"), project=REPO)
    assert pipeline.schedule == ServingSchedule("cron", "0 0 * * 0", "@weekly")
    default = PipelineFile.from_mapping("p", {"training": {}, "serving": {}}, path=Path("p.yaml"), project=REPO)
    assert default.schedule.dag_id == "batch_serving"


@pytest.mark.parametrize(
    ("pattern", "refused"),
    [
        ("rentals_{{ data_interval_start.strftime('%Y-%m-%d') }}.parquet", True),
        ("rentals_{{ds_nodash}}.parquet", True),
        ("rentals_*.parquet", False),
        ("rentals_{{ dag_run.run_after.strftime('%Y%m%d') }}*.parquet", False),
    ],
    ids=["data-interval", "ds", "glob", "run-after"],
)
def test_an_asset_schedule_refuses_a_batch_pattern_that_names_the_interval(pattern: str, refused: bool) -> None:
    raw = {
        "training": {},
        "data": {"batch_pattern": pattern},
        "serving": {"schedule": "x-mlops://rentals/dataset"},
    }
    if not refused:
        assert PipelineFile.from_mapping("p", raw, path=Path("p.yaml"), project=REPO).batch_pattern == pattern
        return
    with pytest.raises(SpecError, match=r"p\.yaml: data\.batch_pattern .* has no logical date or data interval"):
        PipelineFile.from_mapping("p", raw, path=Path("p.yaml"), project=REPO)
    raw["serving"] = {"schedule": "@weekly"}  # an interval schedule names its interval as it likes
    assert PipelineFile.from_mapping("p", raw, path=Path("p.yaml"), project=REPO).batch_pattern == pattern


def _pipeline(name: str, schedule: str) -> PipelineFile:
    raw = {"training": {}, "serving": {"schedule": schedule}}
    return PipelineFile.from_mapping(name, raw, path=Path(f"{name}.yaml"), project=REPO)


def test_pipelines_are_grouped_by_batch_dag_in_file_order() -> None:
    pipelines = [
        _pipeline("a", "@weekly"), _pipeline("b", "@monthly"), _pipeline("c", "0 0 * * 0"), _pipeline("d", "P7D"),
    ]  # fmt: skip
    grouped = batch_dags(pipelines)
    assert list(grouped) == ["batch_serving_weekly", "batch_serving", "batch_serving_every_7d"]
    assert [p.name for p in grouped["batch_serving_weekly"][1]] == ["a", "c"]
    assert grouped["batch_serving_weekly"][0].text == "@weekly"  # the first file's spelling


def test_two_schedules_that_would_share_a_dag_id_are_refused() -> None:
    pipelines = [_pipeline("a", "x-mlops://a/b"), _pipeline("b", "x-mlops://a_b")]
    with pytest.raises(SpecError, match=r"'x-mlops://a/b' \(a\.yaml\) and 'x-mlops://a_b' \(b\.yaml\) would both"):
        batch_dags(pipelines)
