"""Feature transforms on real files: the grammar, as-of joins that never look ahead, tolerance, duplicates,
time zones, and one result whatever the batching or the input kind (Arrow or pandas)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_mlops.core.errors import DataError, SourceNotFoundError, SpecError
from airflow_mlops.core.features import FeatureTransforms, Transformer, bind, load_dimensions
from airflow_mlops.core.storage import StorageRoot
from tests.support.data import FLIGHTS_DIR, flights

ZONE = "America/New_York"
WEATHER: dict[str, Any] = {
    "name": "weather",
    "source": "dims/weather.parquet",
    "keys": {"origin": "origin"},
    "as_of": {"column": "sched_dep_ts", "dimension_column": "time_hour", "tolerance": "2h"},
    "columns": ["temp", "visib"],
}


def transforms(**sections: Any) -> FeatureTransforms:
    return FeatureTransforms.from_mapping({"timezones": {"sched_dep_ts": ZONE}, **sections})


def derive(expression: str, frame: pd.DataFrame) -> pd.Series:
    result = Transformer(transforms(derived={"x": expression})).apply_frame(frame)
    return result["x"]


@pytest.fixture
def root(tmp_path: Path) -> StorageRoot:
    return StorageRoot(str(tmp_path / "storage"))


def write_dim(root: StorageRoot, table: pa.Table, name: str = "weather.parquet") -> None:
    path = Path(root.uri) / "flights" / "dims" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def utc(*parts: int) -> pd.Timestamp:
    return pd.Timestamp(datetime(*parts), tz="UTC")  # type: ignore[arg-type]


# -- grammar ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("shell(distance)", r"unknown function\(s\) \['shell'\]"),
        ("distance; drop table x", r"unexpected '; drop"),
        ("log(carrier_name) + upper(carrier)", r"each side of '\+' must be number; it is string"),
        ("day_of_week(sched_dep_ts, 'Mars/Olympus')", r"'Mars/Olympus' is not a known IANA time zone"),
        ("bucket(distance, [10, 5])", r"edges of bucket\(\) must increase"),
        ("if(upper(carrier), 1, 0)", r"the condition of if\(\) must be boolean"),
        ("clip(distance, 0)", r"clip\(\) takes 3 argument"),
        ('"distance"', r"unexpected"),
    ],
)
def test_expressions_outside_the_grammar_are_refused_naming_the_feature(expression: str, message: str) -> None:
    with pytest.raises(SpecError, match=rf"Derived feature 'x'.*{message}"):
        transforms(derived={"x": expression})


def test_functions_compute_what_they_say() -> None:
    frame = pd.DataFrame(
        {
            "sched_dep_ts": pd.to_datetime(["2013-01-05 23:30", "2013-01-07 06:00", "2013-03-10 02:30"]),
            "distance": [0.0, 100.0, None],
            "air_time": [0.0, 50.0, 10.0],
            "carrier": ["  UA ", "aa", None],
        }
    )
    assert derive(f"day_of_week(sched_dep_ts, '{ZONE}')", frame).tolist() == [6, 1, 7]
    assert derive(f"is_weekend(sched_dep_ts, '{ZONE}')", frame).tolist() == [1, 0, 1]
    # The naive column is local New York time; in UTC the first flight is already on Sunday at 04:30.
    assert derive("hour(sched_dep_ts, 'UTC')", frame).tolist()[:2] == [4, 11]
    assert derive(f"month(sched_dep_ts, '{ZONE}') + day_of_year(sched_dep_ts, '{ZONE}')", frame).tolist() == [6, 8, 72]
    assert derive("distance / air_time", frame).isna().tolist() == [True, False, True]  # x / 0 is missing
    assert derive("log(distance)", frame).isna().tolist() == [True, False, True]
    assert derive("clip(distance, 10, 50)", frame).tolist()[:2] == [10, 50] and np.isnan(
        derive("clip(distance, 10, 50)", frame).iloc[2]
    )
    assert derive("bucket(distance, [50, 500])", frame).tolist()[:2] == [0, 1]
    assert derive("normalize(carrier)", frame).tolist() == ["ua", "aa", None]
    assert derive("if(distance > 50 and not is_null(carrier), 'far', 'near')", frame).tolist() == [
        "near",
        "far",
        "near",
    ]
    assert derive("coalesce(distance, -1) * 2", frame).tolist() == [0, 200, -2]


def test_a_derived_feature_may_read_joined_and_earlier_derived_columns_only() -> None:
    with pytest.raises(SpecError, match="reads derived column\\(s\\) \\['b'\\] that are not defined above it"):
        transforms(derived={"a": "b + 1", "b": "distance"})
    with pytest.raises(SpecError, match="produced by more than one"):
        transforms(joins=[WEATHER], derived={"temp": "distance"})


# -- as-of joins --------------------------------------------------------------------------------------
def test_a_future_dated_dimension_row_is_never_joined(root: StorageRoot) -> None:
    # A flight at 06:15 in New York is 11:15 UTC. The dimension knows 10:00 (too old for 30 minutes of
    # tolerance), 11:15 (at the prediction time: joined) and 11:16 (one minute later: never joined).
    write_dim(root, pa.Table.from_pandas(pd.DataFrame({
        "origin": ["EWR", "EWR", "EWR", "JFK"],
        "time_hour": [utc(2013, 1, 1, 10), utc(2013, 1, 1, 11, 15), utc(2013, 1, 1, 11, 16), utc(2013, 1, 1, 11, 16)],
        "temp": [1.0, 2.0, 99.0, 99.0], "visib": [1.0, 2.0, 99.0, 99.0],
    })))  # fmt: skip
    spec = transforms(joins=[{**WEATHER, "as_of": {**WEATHER["as_of"], "tolerance": "30m"}}])
    transformer = bind(spec, root, "flights")
    batch = pa.Table.from_pandas(pd.DataFrame({
        "origin": ["EWR", "EWR", "JFK", "EWR"],
        "sched_dep_ts": pd.to_datetime(["2013-01-01 06:15", "2013-01-01 06:14", "2013-01-01 06:15", "2013-01-01 5:40"]),
    }))  # fmt: skip
    result = transformer.apply(batch)
    # 06:14 sees only the 10:00 row, 74 minutes old: beyond the tolerance, so missing like no match at all.
    assert result.column("temp").to_pylist() == [2.0, None, None, None]
    assert (
        transformer.receipt()["joins"]["weather"] | {"matched": 1, "unmatched": 3}
        == transformer.receipt()["joins"]["weather"]
    )


def test_real_weather_is_joined_as_of_the_scheduled_hour_the_same_whatever_the_batching(root: StorageRoot) -> None:
    write_dim(root, pq.read_table(FLIGHTS_DIR / "weather.parquet"))
    spec = transforms(joins=[WEATHER], derived={"sched_dow": f"day_of_week(sched_dep_ts, '{ZONE}')"})
    frame = flights(months=[1], sample=3000)
    whole = bind(spec, root, "flights").apply_frame(frame)
    streamed = bind(spec, root, "flights")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    batches = [streamed.apply(b) for b in table.to_batches(max_chunksize=257)]
    joined = pa.Table.from_batches(batches).to_pandas()
    for column in ("temp", "visib", "sched_dow"):
        assert np.array_equal(whole[column].to_numpy(float), joined[column].to_numpy(float), equal_nan=True)
    assert list(joined.columns[: len(frame.columns)]) == list(frame.columns)  # input columns kept, in order
    # Every joined observation is at or before the scheduled departure, at most two hours before.
    weather = pd.read_parquet(FLIGHTS_DIR / "weather.parquet")
    departure = frame["sched_dep_ts"].dt.tz_localize(ZONE, ambiguous="NaT").dt.tz_convert("UTC")
    looked = pd.merge_asof(
        pd.DataFrame({"t": departure, "origin": frame["origin"], "i": range(len(frame))}).dropna().sort_values("t"),
        weather.sort_values("time_hour")[["time_hour", "origin", "temp"]],
        left_on="t", right_on="time_hour", by="origin", tolerance=pd.Timedelta("2h"), direction="backward",
    ).sort_values("i")  # fmt: skip
    assert np.allclose(looked["temp"], whole["temp"].iloc[looked["i"]], equal_nan=True)
    assert streamed.receipt()["joins"]["weather"]["matched"] == int(whole["temp"].notna().sum()) > 2900


def test_duplicate_dimension_rows_follow_the_stated_policy(root: StorageRoot) -> None:
    write_dim(root, pa.table({"faa": ["EWR", "EWR", "JFK"], "alt": [1, 2, 3]}), "airports.parquet")
    lookup = {"name": "airports", "source": "dims/airports.parquet", "keys": {"origin": "faa"}, "columns": ["alt"]}
    with pytest.raises(DataError, match=r"1 row\(s\) repeating a key.*set duplicates: first or last"):
        load_dimensions(transforms(joins=[lookup]), root, "flights")
    batch = pa.table({"origin": ["EWR", "JFK", "LGA"]})
    for policy, expected in (("first", [1, 3, None]), ("last", [2, 3, None])):
        transformer = bind(transforms(joins=[{**lookup, "duplicates": policy}]), root, "flights")
        assert transformer.apply(batch).column("alt").to_pylist() == expected
        assert transformer.receipt()["joins"]["airports"]["unmatched"] == 1


# -- bad input ----------------------------------------------------------------------------------------
def test_time_zones_that_do_not_match_are_refused(root: StorageRoot) -> None:
    write_dim(root, pq.read_table(FLIGHTS_DIR / "weather.parquet"))
    naive = pa.Table.from_pandas(flights(months=[1], sample=50)[["origin", "sched_dep_ts"]])
    undeclared = FeatureTransforms.from_mapping({"joins": [WEATHER]})
    with pytest.raises(DataError, match="Time zones do not match: join 'weather' compares 'sched_dep_ts', a naive"):
        bind(undeclared, root, "flights").apply(naive)
    with pytest.raises(DataError, match="Time zones do not match: 'sched_dep_ts' is a naive timestamp"):
        Transformer(FeatureTransforms.from_mapping({"derived": {"d": f"day_of_week(sched_dep_ts, '{ZONE}')"}})).apply(
            naive
        )
    aware = pa.Table.from_pandas(flights(months=[1], sample=50)[["origin", "time_hour"]])
    declared = FeatureTransforms.from_mapping(
        {"timezones": {"time_hour": ZONE}, "derived": {"d": f"hour(time_hour, '{ZONE}')"}}
    )
    with pytest.raises(DataError, match="declares 'time_hour' in 'America/New_York', but the column carries"):
        Transformer(declared).apply(aware)
    write_dim(root, pa.table({"origin": ["EWR"], "time_hour": pa.array([datetime(2013, 1, 1)]), "temp": [1.0],
                              "visib": [1.0]}))  # fmt: skip
    with pytest.raises(DataError, match=r"naive timestamp.*as_of\.dimension_timezone"):
        load_dimensions(transforms(joins=[WEATHER]), root, "flights")


def test_missing_dimensions_and_keys_are_named(root: StorageRoot) -> None:
    with pytest.raises(SourceNotFoundError, match=r"dimension .*weather\.parquet' does not exist"):
        load_dimensions(transforms(joins=[WEATHER]), root, "flights")
    write_dim(root, pq.read_table(FLIGHTS_DIR / "weather.parquet").drop(["origin"]))
    with pytest.raises(DataError, match="join 'weather' has no column\\(s\\) \\['origin'\\]"):
        load_dimensions(transforms(joins=[WEATHER]), root, "flights")
    write_dim(root, pq.read_table(FLIGHTS_DIR / "weather.parquet"))
    transformer = bind(transforms(joins=[WEATHER]), root, "flights")
    with pytest.raises(DataError, match="lacks column\\(s\\) \\['origin'\\] that the feature transforms read"):
        transformer.apply(pa.Table.from_pandas(flights(months=[1], sample=10)[["sched_dep_ts", "dest"]]))
    with pytest.raises(DataError, match="key 'origin' of the input is number but 'origin' of the dimension is string"):
        transformer.apply(pa.table({"origin": [1, 2], "sched_dep_ts": pa.array([datetime(2013, 1, 1)] * 2)}))


SQL_WEATHER = {**WEATHER, "source": "sql", "connection": "warehouse", "table": "public.weather"}


def test_a_sql_join_is_declared_like_a_sql_data_source_and_travels_with_the_spec() -> None:
    parsed = transforms(joins=[SQL_WEATHER])
    sql = parsed.joins[0].sql
    assert sql is not None and (sql.connection, sql.table, sql.query) == ("warehouse", "public.weather", None)
    assert FeatureTransforms.from_mapping(parsed.to_dict()) == parsed  # the artifact reads back the same
    default = transforms(joins=[{**SQL_WEATHER, "connection": None}]).joins[0].sql
    assert default is not None and default.connection == "mlops_sql_default"


@pytest.mark.parametrize(
    ("join", "message"),
    [
        ({"table": None}, r"features.joins\[0\].source 'sql' needs exactly one of features.joins\[0\].table or"),
        ({"query": "SELECT 1"}, r"needs exactly one of"),
        ({"table": None, "query": "DELETE FROM weather"}, r"Join 'weather': features.joins\[0\].query"),
        ({"table": "a.b.c"}, r"Join 'weather': .*'table' parameter .* must be 'table' or 'schema.table'"),
        ({"source": "dims/weather.parquet"}, r"features.joins\[0\].connection applies to source 'sql'"),
    ],
)
def test_bad_sql_join_declarations_are_refused_when_parsed(join: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        transforms(joins=[{**SQL_WEATHER, **join}])


def test_the_order_of_derived_features_survives_an_artifact_written_with_sorted_keys() -> None:
    import json

    chained = transforms(derived={"zz_base": "distance / 100", "aa_scaled": "zz_base * 2"})
    artifact = json.loads(json.dumps(chained.to_dict(), sort_keys=True))  # as the spec artifact is written
    read_back = FeatureTransforms.from_mapping(artifact)
    assert [d.name for d in read_back.derived] == ["zz_base", "aa_scaled"] and read_back == chained
