"""The upstream cost of features (core.feature_cost.upstream) on real flights data: the weather join's
computation and freshness, a weather file cut short, and a derived feature that costs more than it brings."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from airflow_mlops.core.feature_cost import CostPolicy, UpstreamCost, check_feature_cost, measure_upstream
from airflow_mlops.core.feature_cost.upstream import sample_rows
from airflow_mlops.core.features import FeatureTransforms, bind
from airflow_mlops.core.storage import StorageRoot
from tests.core.feature_cost.support import measured, shipped_spec, trained
from tests.support.data import FLIGHTS_DIR, flights

WEATHER = ["temp", "visib", "precip", "wind_speed"]


def upstream(transforms: FeatureTransforms, features: list[str], rows: int = 10_000) -> UpstreamCost:
    """The transforms timed on flights of January-February, as the check samples a snapshot."""
    table = pa.Table.from_pandas(flights(months=[1, 2])[transforms.inputs()], preserve_index=False)
    transformer = bind(transforms, StorageRoot("."), "-")
    try:
        return measure_upstream(transformer, sample_rows(table, rows, ["sched_dep_ts"]), features, repeats=3)
    finally:
        transformer.close()


def shipped_transforms(**weather: Any) -> FeatureTransforms:
    features = shipped_spec()["features"]
    features["joins"] = [{**features["joins"][0], **weather}]
    return FeatureTransforms.from_mapping(features)


def test_the_weather_join_has_a_computation_cost_and_a_freshness_figure() -> None:
    result = trained("shipped")
    cost = upstream(result.spec.transforms, result.spec.features)
    assert cost.rows == 10_000
    assert cost.transforms["join weather"]["features"] == WEATHER
    assert cost.transforms["derived sched_dow"]["features"] == ["sched_dow"]
    # The join's time is shared by the four columns it brings; a column read as it is costs nothing upstream.
    join_ms = cost.transforms["join weather"]["ms_per_1k"]
    assert join_ms > 0 and all(cost.compute_ms_per_1k[f] == pytest.approx(join_ms / 4) for f in WEATHER)
    assert cost.compute_ms_per_1k["sched_dow"] > 0 and cost.compute_ms_per_1k["carrier"] == 0.0
    weather = cost.dimensions["weather"]
    assert weather.features == tuple(WEATHER) and weather.tolerance_hours == 2.0
    assert weather.newest == "2013-12-30T23:00:00+00:00"  # the shipped file's last hour
    assert weather.rows_newest == "2013-03-01T04:59:00+00:00"  # the last departure, 23:59 on 28 February in New York
    assert weather.lag_hours == 0.0 and weather.unmatched_share < 0.02
    # Priced with the model: the shipped flights model still pays for every feature, upstream included.
    measurement = replace(measured("shipped"), upstream=cost)
    finding = check_feature_cost(measurement, result.importance, CostPolicy())
    assert finding.severity == "ok", finding.message
    table = {row["feature"]: row for row in finding.details["features"]}
    assert table["temp"]["compute_ms_per_1k"] == pytest.approx(join_ms / 4, abs=1e-5)
    assert table["temp"]["dimension"] == "weather" and table["carrier"]["dimension"] is None
    assert sum(row["time_share"] for row in table.values()) == pytest.approx(1.0, abs=1e-4)
    assert finding.details["upstream"]["dimensions"]["weather"]["lag_hours"] == 0.0


def test_a_weather_file_cut_short_is_flagged_stale(tmp_path: Path) -> None:
    weather = pq.read_table(FLIGHTS_DIR / "weather.parquet")
    cut = weather.filter(pc.less(weather.column("time_hour"), pa.scalar(1359676800, pa.timestamp("s", tz="UTC"))))
    pq.write_table(cut, tmp_path / "weather.parquet")  # the feed stopped on 1 February 2013
    result = trained("shipped")
    cost = upstream(shipped_transforms(source=str(tmp_path / "weather.parquet")), result.spec.features)
    stale = cost.dimensions["weather"]
    assert stale.newest is not None and stale.newest.startswith("2013-01-31T23")
    assert 27 * 24 < stale.lag_hours < 29 * 24  # to the last departures of 28 February
    assert 0.4 < stale.unmatched_share < 0.6  # February's flights find no observation
    measurement = replace(measured("shipped"), upstream=cost)
    finding = check_feature_cost(measurement, result.importance, CostPolicy())
    assert finding.severity == "warn" and set(WEATHER) <= set(finding.details["flagged"])
    assert "its dimension 'weather' is stale" in finding.message and "(limit 2 h)" in finding.message
    assert "of rows find no 'weather' row (limit 10.0%)" in finding.message
    assert not {"carrier", "sched_dow"} & set(finding.details["flagged"])
    # A month of lag and most rows unmatched are accepted when the limits say so.
    lenient = CostPolicy.from_mapping({"max_dimension_lag": "30d", "max_unmatched_share": "0.6"})
    assert check_feature_cost(measurement, result.importance, lenient).severity == "ok"


def test_an_expensive_derived_feature_the_model_does_not_use_is_flagged() -> None:
    result = trained("band")
    finding = check_feature_cost(measured("band"), result.importance, CostPolicy())
    band = next(row for row in finding.details["features"] if row["feature"] == "distance_band")
    # Served alone it is one cheap numeric column: the model-side check lets it pass.
    assert band["split_nodes"] == 0 and band["importance_share"] == 0.0
    assert band["cost_share"] < 0.02 and "distance_band" not in finding.details["flagged"]
    cost = upstream(result.spec.transforms, result.spec.features)
    assert cost.compute_ms_per_1k["distance_band"] > 5 * cost.compute_ms_per_1k["sched_dow"]
    priced = check_feature_cost(replace(measured("band"), upstream=cost), result.importance, CostPolicy())
    band = next(row for row in priced.details["features"] if row["feature"] == "distance_band")
    assert band["cost_share"] > 0.02 and priced.severity == "warn"
    assert "distance_band" in priced.details["flagged"]
    assert "distance_band: " in priced.message and "of the cost for 0.0% of the importance" in priced.message


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"max_dimension_lag": "soon"}, "'max_dimension_lag' parameter must be a duration"),
        ({"max_unmatched_share": "1.5"}, "'max_unmatched_share' parameter must be a number >= 0 and <= 1"),
    ],
    ids=["lag-not-a-duration", "unmatched-above-one"],
)
def test_a_bad_upstream_limit_is_refused_naming_it(raw: dict[str, Any], match: str) -> None:
    from airflow_mlops.core.errors import SpecError

    with pytest.raises(SpecError, match=match):
        CostPolicy.from_mapping(raw)
