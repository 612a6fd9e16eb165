"""Core validation: suite inference, suite files, classification of bad input, reports.

Great Expectations takes 7-14 s to import; every test here that needs it goes through the module-scoped
``suite`` fixture so the import happens once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.core.errors import DataError, SourceNotFoundError, SpecError
from airflow_mlops.core.storage import StorageRoot, s3_filesystem
from airflow_mlops.core.validation import checks as v

REPO = Path(__file__).resolve().parents[3]
TEMPERATURE = "Température °C"  # unicode and a space
SPACED = "dep delay"


def reference_frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    delay = pd.array(rng.normal(5, 20, n).round().astype("int64"), dtype="Int32")
    delay[rng.random(n) < 0.05] = pd.NA
    return pd.DataFrame(
        {
            "distance": rng.integers(100, 2000, n).astype("int64"),
            "delay": delay,
            "carrier": rng.choice(["AA", "DL", "UA"], n).astype(object),
            TEMPERATURE: rng.normal(10, 5, n),
            SPACED: rng.choice(["early", "late", "on time"], n).astype(object),
            "cancelled": (rng.random(n) < 0.1).astype("int8"),
            "tailnum": [f"N{i:05d}" for i in rng.integers(0, 100_000, n)],
            "ts": pd.date_range("2013-01-01", periods=n, freq="h"),
            "flag": rng.random(n) < 0.5,
        }
    )


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return reference_frame()


@pytest.fixture(scope="module")
def suite(reference: pd.DataFrame) -> Any:
    return v.infer_suite(reference, name="test.inferred", source="reference_frame()")


def expectations_of(suite: Any, etype: str, column: str | None = None) -> list[dict[str, Any]]:
    found = [e for e in v.suite_to_dict(suite)["expectations"] if e["type"] == etype]
    return [e for e in found if column is None or e["kwargs"].get("column") == column]


# -- the inference spec (no GX needed) -------------------------------------------------------------------------
def test_spec_from_mapping_coerces_rendered_strings() -> None:
    spec = v.InferenceSpec.from_mapping(
        {
            "categorical_max_unique": "20",
            "range_margin": "0.25",
            "expected_rows": "30000",
            "row_count_tolerance": "none",
            "quantiles": "[0.1, 0.9]",
            "schema_only_columns": '["ts"]',
            "column_order": "true",
            "type_check": "exact",
        }
    )
    assert spec.categorical_max_unique == 20 and spec.range_margin == 0.25 and spec.expected_rows == 30000
    assert spec.row_count_tolerance is None and spec.quantiles == (0.1, 0.9) and spec.schema_only_columns == ("ts",)
    assert spec.column_order is True and spec.type_check == "exact"


@pytest.mark.parametrize(
    ("mapping", "match"),
    [
        ({"range_margin": "-1"}, r"'range_margin' parameter of InferenceSpec must be a float >= 0\. Got -1\.0"),
        ({"categorical_max_ratio": "1.5"}, r"categorical_max_ratio.*\(0, 1\]"),
        ({"quantiles": "[0.5, 2]"}, r"quantiles.*floats in \[0, 1\]"),
        ({"expected_rows": "2.5"}, r"'expected_rows' inference setting could not be read\. Got '2.5'"),
        ({"type_check": "loose"}, r"type_check.*'kind' or 'exact'. Got 'loose'"),
        ({"range_margn": "0.1"}, r"Unknown inference settings \['range_margn'\]"),
        ({"quantiles": "0.5"}, r"'quantiles' inference setting could not be read"),
        ({"categorical_columns": ["a"], "schema_only_columns": ["a"]}, r"no column also in schema_only_columns"),
    ],
    ids=["negative-margin", "ratio-above-one", "quantile-above-one", "fractional-rows", "unknown-type-check",
         "typo", "scalar-for-list", "contradiction"],
)  # fmt: skip
def test_bad_inference_settings_are_named(mapping: dict[str, Any], match: str) -> None:
    with pytest.raises(SpecError, match=match):
        v.InferenceSpec.from_mapping(mapping)


def test_jsonable_handles_numpy_pandas_and_non_finite_numbers() -> None:
    value = {
        "b": np.bool_(True),
        "i": np.int32(3),
        "f": [np.float64("nan"), math.inf, -math.inf, 1.5],
        "na": pd.NA,
        "ts": pd.Timestamp("2013-01-01T05:00", tz="UTC"),
        "set": {2, 1},
    }
    out = v.jsonable(value)
    assert out == {
        "b": True,
        "i": 3,
        "f": ["NaN", "Infinity", "-Infinity", 1.5],
        "na": None,
        "ts": "2013-01-01T05:00:00+00:00",
        "set": [1, 2],
    }
    assert type(out["b"]) is bool
    json.loads(v.dumps(value))  # strict JSON: no NaN literals


def test_report_url_for_local_s3_and_published_roots(tmp_path: Path) -> None:
    local = StorageRoot(str(tmp_path))
    uri = local.layout("p", "validation", "2013-04-01", "report.html")
    assert v.report_url(local, uri) == f"file://{tmp_path}/p/validation/2013-04-01/report.html"
    assert v.report_url(local, uri, "https://reports.example.com/ml/") == (
        "https://reports.example.com/ml/p/validation/2013-04-01/report.html"
    )
    s3 = StorageRoot("s3://bucket/prefix", s3_filesystem(endpoint_url="http://127.0.0.1:1"))
    s3_uri = s3.layout("p", "validation", "2013-04-01T00:00:00+00:00", "report.html")
    assert v.report_url(s3, s3_uri) == (
        "https://s3.console.aws.amazon.com/s3/object/bucket"
        "?prefix=prefix/p/validation/2013-04-01T00%3A00%3A00%2B00%3A00/report.html"
    )


# -- inference --------------------------------------------------------------------------------------------------
def test_inferred_suite_records_schema_nulls_domains_ranges_and_rows(suite: Any, reference: pd.DataFrame) -> None:
    (columns,) = expectations_of(suite, "expect_table_columns_to_match_set")
    assert columns["kwargs"]["column_set"] == list(reference.columns)
    assert columns["kwargs"].get("exact_match", True) is True  # GX leaves its default out of the JSON
    assert columns["severity"] == "critical"
    (delay_type,) = expectations_of(suite, "expect_column_values_to_be_in_type_list", "delay")
    assert set(delay_type["kwargs"]["type_list"]) >= {"Int32Dtype", "int64", "float64"}  # kind, not exact dtype
    (ts_type,) = expectations_of(suite, "expect_column_values_to_be_of_type", "ts")
    assert ts_type["kwargs"]["type_"] == "datetime64"
    # No nulls in the reference: none allowed. 5% nulls: a bound of 5% * 1.5 + 1%.
    (distance_nulls,) = expectations_of(suite, "expect_column_values_to_not_be_null", "distance")
    assert "mostly" not in distance_nulls["kwargs"]
    (delay_nulls,) = expectations_of(suite, "expect_column_values_to_not_be_null", "delay")
    rate = float(reference["delay"].isna().mean())
    assert delay_nulls["kwargs"]["mostly"] == pytest.approx(1 - (rate * 1.5 + 0.01), abs=1e-6)
    assert delay_nulls["severity"] == "warning"
    # Domains for low-cardinality text and booleans, not for identifiers.
    assert expectations_of(suite, "expect_column_values_to_be_in_set", "carrier")[0]["kwargs"]["value_set"] == [
        "AA",
        "DL",
        "UA",
    ]
    assert expectations_of(suite, "expect_column_values_to_be_in_set", "flag")[0]["kwargs"]["value_set"] == [
        False,
        True,
    ]
    assert expectations_of(suite, "expect_column_values_to_be_in_set", "tailnum") == []
    # Numeric ranges with a 10% margin, quantiles; a two-valued column gets its rate checked instead.
    (distance_range,) = expectations_of(suite, "expect_column_values_to_be_between", "distance")
    low, high = reference["distance"].min(), reference["distance"].max()
    assert distance_range["kwargs"]["min_value"] == pytest.approx(low - 0.1 * (high - low))
    assert distance_range["kwargs"]["max_value"] == pytest.approx(high + 0.1 * (high - low))
    assert len(expectations_of(suite, "expect_column_quantile_values_to_be_between", "distance")) == 1
    assert expectations_of(suite, "expect_column_quantile_values_to_be_between", "cancelled") == []
    (rate_check,) = expectations_of(suite, "expect_column_mean_to_be_between", "cancelled")
    share = float(reference["cancelled"].mean())
    assert rate_check["kwargs"]["min_value"] == pytest.approx(share * 0.5)
    assert rate_check["kwargs"]["max_value"] == pytest.approx(share * 1.5)
    # Datetimes: type and nulls only. Row count: 400 +/- 50%.
    assert expectations_of(suite, "expect_column_values_to_be_between", "ts") == []
    (rows,) = expectations_of(suite, "expect_table_row_count_to_be_between")
    assert (rows["kwargs"]["min_value"], rows["kwargs"]["max_value"]) == (200, 600)


def test_inferred_suite_is_deterministic_and_round_trips_through_json(suite: Any, reference: pd.DataFrame) -> None:
    again = v.infer_suite(reference, name="test.inferred", source="reference_frame()")
    assert v.dumps(v.suite_to_dict(again)) == v.dumps(v.suite_to_dict(suite))
    loaded = v.suite_from_dict(json.loads(v.dumps(v.suite_to_dict(suite))))
    assert v.suite_to_dict(loaded) == v.suite_to_dict(suite)


def test_inference_options_change_what_is_checked(suite: Any, reference: pd.DataFrame) -> None:
    spec = v.InferenceSpec(
        schema_only_columns=("distance",),
        categorical_columns=("cancelled",),
        row_count_tolerance=None,
        column_order=True,
        type_check="exact",
    )
    custom = v.infer_suite(reference, spec)
    assert expectations_of(custom, "expect_column_values_to_be_between", "distance") == []
    assert expectations_of(custom, "expect_column_values_to_not_be_null", "distance") != []
    assert expectations_of(custom, "expect_column_values_to_be_in_set", "cancelled")[0]["kwargs"]["value_set"] == [
        0,
        1,
    ]
    (rows,) = expectations_of(custom, "expect_table_row_count_to_be_between")
    assert rows["kwargs"] == {"min_value": 1}
    assert expectations_of(custom, "expect_table_columns_to_match_ordered_list") != []
    (delay_type,) = expectations_of(custom, "expect_column_values_to_be_of_type", "delay")
    assert delay_type["kwargs"]["type_"] == "int32"


@pytest.mark.parametrize(
    ("frame", "spec", "error", "match"),
    [
        (reference_frame().iloc[0:0], None, DataError, r"reference frame has no rows"),
        (pd.DataFrame(index=range(3)), None, DataError, r"has no columns"),
        (reference_frame().rename(columns={"delay": "distance"}), None, DataError, r"duplicate column names"),
        (reference_frame(), v.InferenceSpec(schema_only_columns=("nope",)), SpecError, r"names columns \['nope'\]"),
    ],
    ids=["no-rows", "no-columns", "duplicate-names", "unknown-column-in-spec"],
)
def test_bad_references_are_refused(frame: pd.DataFrame, spec: Any, error: type, match: str, suite: Any) -> None:
    with pytest.raises(error, match=match):
        v.infer_suite(frame, spec)


# -- suite files --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", r"is not valid JSON"),
        ('{"expectations": []}', r"has no 'name'"),
        ('{"name": "s", "expectations": []}', r"at least one expectation"),
        (
            '{"name": "s", "expectations": [{"type": "expect_column_to_exist", "kwargs": {"column": "a"}},'
            ' {"type": "expect_magic", "kwargs": {}}]}',
            r"Expectation #1 \('expect_magic'\) of suite .* is not a valid GX",
        ),
        (
            '{"name": "s", "expectations": [{"type": "expect_column_values_to_be_between", "kwargs": {}}]}',
            r"Expectation #0 \('expect_column_values_to_be_between'\).*not a valid GX",
        ),
        ('["expect_column_to_exist"]', r"must be a JSON object. Got list"),
    ],
    ids=["not-json", "no-name", "no-expectations", "unknown-type", "missing-argument", "not-an-object"],
)
def test_bad_suite_files_are_named(tmp_path: Path, content: str, match: str, suite: Any) -> None:
    path = tmp_path / "suite.json"
    path.write_text(content)
    with pytest.raises(SpecError, match=match):
        v.load_suite(str(path))


def test_missing_suite_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SourceNotFoundError, match=r"No file at '.*nope\.json'"):
        v.load_suite(str(tmp_path / "nope.json"))


def test_gx_0x_suite_layout_is_read(tmp_path: Path, suite: Any) -> None:
    legacy = {
        "expectation_suite_name": "legacy",
        "expectations": [{"expectation_type": "expect_column_to_exist", "kwargs": {"column": "a"}, "meta": {}}],
    }
    path = tmp_path / "legacy.json"
    path.write_text(json.dumps(legacy))
    loaded = v.load_suite(f"file://{path}")
    assert loaded.name == "legacy" and [e.expectation_type for e in loaded.expectations] == ["expect_column_to_exist"]


def test_shipped_flights_suite_loads_and_passes_on_a_real_month(suite: Any) -> None:
    from tests.support.data import flights

    shipped = v.load_suite(str(REPO / "include" / "expectations" / "flights.json"))
    result = v.validate_frame(flights([7], sample=3000), shipped)
    assert (result.severity, result.failed) == ("ok", 0), result.failures


# -- validation and classification --------------------------------------------------------------------------------
def test_the_reference_passes_its_own_suite(suite: Any, reference: pd.DataFrame) -> None:
    result = v.validate_frame(reference, suite)
    assert (result.passed, result.severity, result.failed) == (True, "ok", 0), result.failures
    assert result.evaluated == len(suite.expectations)


def _set(column: str, rows: slice, value: Any) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        values = frame[column].astype(object)
        values.iloc[rows] = value
        frame[column] = values.infer_objects() if not isinstance(value, str) else values
        return frame

    return mutate


def _with_nans(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[frame.index[:120], TEMPERATURE] = np.nan
    return frame


def _with_infinities(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[frame.index[:3], TEMPERATURE] = [np.inf, -np.inf, np.inf]
    return frame


def _mixed_types(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    values = frame["carrier"].tolist()
    values[:5] = [1, 2, 3, 4, 5]
    frame["carrier"] = pd.Series(values, dtype=object)
    return frame


BAD_INPUT: list[tuple[str, Callable[[pd.DataFrame], pd.DataFrame], str, str, str | None, str]] = [
    # id, mutation, severity, kind of the first matching failure, its column, words in its reason
    ("empty-frame", lambda f: f.iloc[0:0], "error", "empty", None, "the snapshot has no rows"),
    ("all-null-column", lambda f: f.assign(carrier=None), "error", "schema", "carrier", "holds no values"),
    ("nan-in-numeric", _with_nans, "warn", "value", TEMPERATURE, "nulls (30.00%), at most 0.00% allowed"),
    ("inf-in-numeric", _with_infinities, "warn", "value", TEMPERATURE, "3 values (0.75%) outside"),
    ("mixed-type-object-column", _mixed_types, "error", "schema", "carrier", "5 values (1.25%) not of type"),
    ("new-categorical-value", _set("carrier", slice(0, 7), "ZZ"), "warn", "value", "carrier", "outside the known"),
    ("new-value-in-spaced-name", _set(SPACED, slice(0, 2), "gone"), "warn", "value", SPACED, "e.g. ['gone', 'gone']"),
    ("unicode-column-renamed", lambda f: f.rename(columns={TEMPERATURE: "Temperature C"}), "error", "schema", None,
     "missing columns ['Température °C']; unexpected columns ['Temperature C']"),
    ("column-dropped", lambda f: f.drop(columns=["delay"]), "error", "schema", "delay", "column 'delay' is missing"),
    ("column-added", lambda f: f.assign(**{"new col": 1}), "error", "schema", None, "unexpected columns ['new col']"),
    ("numeric-became-text", lambda f: f.assign(distance=f["distance"].astype(str)), "error", "schema", "distance",
     "not of type"),
    ("too-few-rows", lambda f: f.iloc[:150], "warn", "value", None, "150 rows, expected [200, 600]"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("mutate", "severity", "kind", "column", "words"),
    [case[1:] for case in BAD_INPUT],
    ids=[case[0] for case in BAD_INPUT],
)
def test_bad_input_is_classified(
    suite: Any,
    reference: pd.DataFrame,
    mutate: Callable[[pd.DataFrame], pd.DataFrame],
    severity: str,
    kind: str,
    column: str | None,
    words: str,
) -> None:
    result = v.validate_frame(mutate(reference), suite)
    assert result.severity == severity
    assert result.passed is (severity != "error")
    matches = [f for f in result.failures if f.kind == kind and f.column == column and words in f.reason]
    assert matches, [f.to_dict() for f in result.failures]
    if severity == "warn":
        assert all(not f.blocking for f in result.failures)
    else:
        assert result.failures[0].blocking  # blocking failures are listed first
        assert words in result.failure_message() or kind == "value"
    json.loads(v.dumps(result.to_dict()))  # the receipt is strict JSON


def test_an_empty_snapshot_reports_emptiness_not_every_vacuous_check(suite: Any, reference: pd.DataFrame) -> None:
    result = v.validate_frame(reference.iloc[0:0], suite)
    assert [f.kind for f in result.failures] == ["empty"]
    assert result.counts == {"schema": 0, "empty": 1, "error": 0, "value": 0}
    assert result.failures_omitted > 0  # the vacuous checks are counted as left out, not hidden silently


def test_a_dropped_column_is_reported_once_not_per_expectation(suite: Any, reference: pd.DataFrame) -> None:
    result = v.validate_frame(reference.drop(columns=["delay"]), suite)
    assert [f.reason for f in result.failures if f.column == "delay"] == ["column 'delay' is missing from the data"]
    assert result.counts["schema"] >= 4  # columns set, type, values present, and the column's value checks


def test_a_suite_naming_a_column_the_data_lacks_is_schema_skew(reference: pd.DataFrame, suite: Any) -> None:
    handwritten = v.suite_from_dict(
        {
            "name": "handwritten",
            "expectations": [
                {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "ghost"}},
                {"type": "expect_column_values_to_be_between", "kwargs": {"column": "distance", "min_value": 0}},
            ],
        }
    )
    result = v.validate_frame(reference, handwritten)
    assert result.severity == "error"
    (failure,) = result.failures
    assert (failure.kind, failure.column, failure.observed) == ("schema", "ghost", {"missing_columns": ["ghost"]})
    assert "column 'ghost' is missing from the data" in result.failure_message()


def test_unevaluable_expectations_block_and_meta_overrides_the_kind(reference: pd.DataFrame, suite: Any) -> None:
    handwritten = v.suite_from_dict(
        {
            "name": "handwritten",
            "expectations": [
                # A range on a text column: GX cannot compare, so nothing was checked.
                {"type": "expect_column_quantile_values_to_be_between", "kwargs": {"column": "carrier",
                 "quantile_ranges": {"quantiles": [0.5], "value_ranges": [[0, 1]]}}},
                # A type check the author wants only as a warning.
                {"type": "expect_column_values_to_be_of_type", "kwargs": {"column": "distance", "type_": "float64"},
                 "meta": {"mlops_skew": "value"}},
            ],
        }
    )  # fmt: skip
    result = v.validate_frame(reference, handwritten)
    kinds = {f.expectation_type: f.kind for f in result.failures}
    assert kinds == {
        "expect_column_quantile_values_to_be_between": "error",
        "expect_column_values_to_be_of_type": "value",
    }
    assert result.severity == "error"
    (error,) = [f for f in result.failures if f.kind == "error"]
    assert "could not be evaluated" in error.reason and "exception" in error.observed


def test_the_receipt_is_capped_and_counts_the_rest(suite: Any, reference: pd.DataFrame) -> None:
    frame = reference.assign(distance=-reference["distance"], **{TEMPERATURE: reference[TEMPERATURE] * 100})
    frame[SPACED] = "other"
    result = v.validate_frame(frame, suite, max_failures=2)
    assert len(result.failures) == 2
    assert result.failures_omitted == result.failed - 2
    assert result.to_dict()["failed_expectations_omitted"] == result.failures_omitted


# -- snapshots and reports --------------------------------------------------------------------------------------
def _write_parquet(root: StorageRoot, uri: str, frame: pd.DataFrame) -> None:
    import io

    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    root.write_bytes(uri, buffer.getvalue())


def _check_reports(root: StorageRoot, result: v.ValidationResult, page: str) -> None:
    def no_constants(name: str) -> None:
        raise AssertionError(f"non-standard JSON constant {name}")

    document = json.loads(root.read_bytes(str(result.result_uri)), parse_constant=no_constants)
    assert document["meta"]["mlops"]["severity"] == result.severity
    assert document["meta"]["mlops"]["report_uri"] == result.report_uri
    assert len(document["results"]) == result.evaluated
    html = root.read_bytes(str(result.report_uri)).decode()
    assert html == page and html.startswith("<!DOCTYPE html>")
    assert "<script" not in html and "http" not in html.split("</style>")[0]  # self-contained


def test_snapshot_validation_writes_json_and_html_reports(tmp_path: Path, reference: pd.DataFrame, suite: Any) -> None:
    root = StorageRoot(str(tmp_path / "storage"))
    reference_uri = root.layout("flights", "snapshots", "2013-01-01", "data.parquet")
    current_uri = root.layout("flights", "snapshots", "2013-04-01", "data.parquet")
    _write_parquet(root, reference_uri, reference)
    current = reference.copy()
    current.loc[current.index[:4], "carrier"] = "<b>ZZ</b>"
    _write_parquet(root, current_uri, current)

    inferred, suite_uri = v.prepare_suite(root, pipeline="flights", partition="2013-04-01", reference_uri=reference_uri)
    assert suite_uri == root.layout("flights", "validation", "2013-04-01", "expectation_suite.json")
    assert v.suite_to_dict(v.load_suite(suite_uri, root)) == v.suite_to_dict(inferred)

    result, page = v.validate_snapshot(
        root, current_uri, inferred, pipeline="flights", partition="2013-04-01", suite_uri=suite_uri
    )
    assert result.severity == "warn" and result.snapshot_uri == current_uri and result.suite_uri == suite_uri
    _check_reports(root, result, page)
    assert "&lt;b&gt;ZZ&lt;/b&gt;" in page and "<b>ZZ</b>" not in page  # data is escaped
    assert TEMPERATURE in page
    folder = root.layout("flights", "validation", "2013-04-01")
    assert root.list_files(folder) == [suite_uri, result.report_uri, result.result_uri]
    assert not [p for p in (tmp_path / "storage").rglob("*") if ".tmp" in p.name]


def test_unreadable_snapshots_are_named(tmp_path: Path, suite: Any) -> None:
    root = StorageRoot(str(tmp_path))
    uri = root.layout("p", "snapshots", "x", "data.parquet")
    with pytest.raises(SourceNotFoundError, match=r"No snapshot at"):
        v.read_snapshot(uri, root)
    root.write_bytes(uri, b"not parquet")
    with pytest.raises(DataError, match=r"is not a readable Parquet file"):
        v.read_snapshot(uri, root)


def test_reports_on_an_s3_root(s3_server: Any, s3_bucket: str, reference: pd.DataFrame, suite: Any) -> None:
    fs = s3_filesystem(
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        region=s3_server.region,
        endpoint_url=s3_server.endpoint_url,
    )
    root = StorageRoot(f"s3://{s3_bucket}/ml", fs)
    uri = root.layout("flights", "snapshots", "2013-04-01", "data.parquet")
    _write_parquet(root, uri, reference.drop(columns=["flag"]))
    result, page = v.validate_snapshot(root, uri, suite, pipeline="flights", partition="2013-04-01")
    assert (
        result.severity == "error"
        and result.report_uri == f"s3://{s3_bucket}/ml/flights/validation/2013-04-01/report.html"
    )
    _check_reports(root, result, page)
    keys = sorted(o["Key"] for o in s3_server.client().list_objects_v2(Bucket=s3_bucket)["Contents"])
    assert [k for k in keys if "/validation/" in k] == [
        "ml/flights/validation/2013-04-01/report.html",
        "ml/flights/validation/2013-04-01/validation_result.json",
    ]
