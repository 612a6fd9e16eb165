from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.core.errors import DataError, IntegrityError, SpecError
from airflow_mlops.core.onnx_model import MISSING_CATEGORY, OnnxInput, OnnxModel, feed, inputs_from_spec
from tests.support.data import flights

NUMERIC = ["distance", "hour"]
CATEGORICAL = ["carrier", "origin"]
INPUTS = [OnnxInput(c, c, "float") for c in NUMERIC] + [OnnxInput(c, c, "string") for c in CATEGORICAL]


@pytest.fixture(scope="module")
def january() -> pd.DataFrame:
    frame = flights(months=[1], sample=4000)
    return frame[frame["arr_delayed_15"].notna()].reset_index(drop=True)


@pytest.fixture(scope="module")
def exported(january: pd.DataFrame) -> tuple[bytes, object]:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    model = Pipeline(
        [
            (
                "features",
                ColumnTransformer(
                    [("num", StandardScaler(), NUMERIC), ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL)]
                ),
            ),
            ("clf", LogisticRegression(max_iter=200)),
        ]
    )
    x = january[NUMERIC + CATEGORICAL].copy()
    x[NUMERIC] = x[NUMERIC].astype("float32")
    model.fit(x, january["arr_delayed_15"].astype(int))
    types = [(c, FloatTensorType([None, 1])) for c in NUMERIC] + [(c, StringTensorType([None, 1])) for c in CATEGORICAL]
    onx = to_onnx(model, initial_types=types, options={id(model): {"zipmap": False}}, target_opset=17)
    return onx.SerializeToString(), model


def test_onnx_matches_the_native_pipeline_on_real_flights(exported, january: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
    model_bytes, native = exported
    onnx_model = OnnxModel(model_bytes, INPUTS)
    outputs = onnx_model.run(january)
    assert set(outputs) == {"label", "probabilities"}
    probabilities = outputs["probabilities"]
    x = january[NUMERIC + CATEGORICAL].copy()
    x[NUMERIC] = x[NUMERIC].astype("float32")
    assert np.abs(probabilities - native.predict_proba(x)).max() < 1e-5


def test_sha256_mismatch_refuses_to_load(exported) -> None:  # type: ignore[no-untyped-def]
    model_bytes, _ = exported
    with pytest.raises(IntegrityError, match="was changed"):
        OnnxModel(model_bytes, INPUTS, expected_sha256="0" * 64)
    with pytest.raises(IntegrityError, match="could not be loaded"):
        OnnxModel(model_bytes[: len(model_bytes) // 2], INPUTS)


def test_declared_inputs_must_match_the_graph(exported) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SpecError, match="expects inputs"):
        OnnxModel(exported[0], INPUTS[:-1])


def test_feed_names_a_missing_column_and_an_unreadable_number(january: pd.DataFrame) -> None:
    with pytest.raises(DataError, match=r"missing feature column\(s\) \['origin'\]"):
        feed(january.drop(columns=["origin"]), INPUTS)
    bad = january.head(3).astype({"distance": "object"})
    bad.loc[1, "distance"] = "far"
    with pytest.raises(DataError, match="'distance' must be numeric; it holds 'far'"):
        feed(bad, INPUTS)


def test_feed_coerces_dtypes_and_fills_missing_categories(january: pd.DataFrame) -> None:
    frame = january.head(3).astype({"distance": "string", "hour": "Int64"})
    frame.loc[0, "carrier"] = None
    frame.loc[1, "hour"] = pd.NA
    result = feed(frame.assign(extra="ignored"), INPUTS)
    assert set(result) == {"distance", "hour", "carrier", "origin"}
    assert result["distance"].dtype == np.float32 and result["distance"].shape == (3, 1)
    assert np.isnan(result["hour"][1, 0])
    assert result["carrier"][0, 0] == MISSING_CATEGORY


def test_inputs_from_spec_validates() -> None:
    spec = {"onnx_inputs": [i.to_dict() for i in INPUTS]}
    assert inputs_from_spec(spec) == INPUTS
    with pytest.raises(SpecError, match="no 'onnx_inputs'"):
        inputs_from_spec({})
    with pytest.raises(SpecError, match="'float' or 'string'"):
        inputs_from_spec({"onnx_inputs": [{"name": "x", "type": "int"}]})


def test_feed_arrow_gives_what_feed_gives_for_every_column_type(january: pd.DataFrame) -> None:
    import decimal

    import pyarrow as pa

    from airflow_mlops.core.onnx_model import feed_arrow

    frame = january.head(50).copy()
    frame.loc[3, "carrier"] = None
    frame.loc[4, "distance"] = np.nan
    columns = {
        "int": frame["hour"].astype("int64"),
        "nullable_int": frame["hour"].astype("Int32").where(frame.index != 7),
        "float_nan": frame["distance"],
        "text_numbers": frame["distance"].map(lambda v: None if np.isnan(v) else f"{v:.1f}"),
        "bools": frame["hour"] > 12,
        "decimals": frame["distance"].map(lambda v: None if np.isnan(v) else decimal.Decimal(f"{v:.2f}")),
        "all_null": pd.Series([None] * len(frame), dtype="object"),
        "text": frame["carrier"],
        "category": frame["carrier"].astype("category"),
        "int_category": frame["month"],  # an integer column declared categorical
        "large_text": frame["origin"],
    }
    table = pa.table({k: pa.array(v, from_pandas=True) for k, v in columns.items()})
    table = table.set_column(
        table.schema.get_field_index("large_text"), "large_text", table.column("large_text").cast(pa.large_string())
    )
    numeric = ["int", "nullable_int", "float_nan", "text_numbers", "bools", "decimals", "all_null"]
    inputs = [OnnxInput(c, c, "float") for c in numeric]
    inputs += [OnnxInput(c, c, "string") for c in ("text", "category", "int_category", "large_text")]
    from_pandas = feed(table.to_pandas(), inputs)
    from_arrow = feed_arrow(table, inputs)
    assert table.schema.field("category").type == pa.dictionary(pa.int8(), pa.string())
    for item in inputs:
        a, b = from_pandas[item.name], from_arrow[item.name]
        assert a.shape == b.shape == (len(frame), 1), item.name
        if item.type == "float":
            assert b.dtype == np.float32
            np.testing.assert_array_equal(a, b, err_msg=item.name)
        else:
            assert a.tolist() == b.tolist(), item.name
    assert from_arrow["text"][3, 0] == MISSING_CATEGORY and np.isnan(from_arrow["float_nan"][4, 0])
    for batch in table.to_batches(max_chunksize=17):  # record batches as well as tables
        assert feed_arrow(batch, inputs)["text"].shape == (batch.num_rows, 1)
    with pytest.raises(DataError, match=r"missing feature column\(s\) \['nowhere'\]"):
        feed_arrow(table, [OnnxInput("nowhere", "nowhere", "float")])


def test_feed_arrow_block_rounds_as_arrow_casts_each_column() -> None:
    """Null-free numbers go through one float32 block; every value must be what Arrow's cast gives."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from airflow_mlops.core.onnx_model import feed_arrow

    big = [2**53 + 1, -(2**63), 2**63 - 1, 16_777_217, 0]
    columns = {
        "int64": pa.array(big, pa.int64()),
        "uint64": pa.array([2**64 - 1, 1, 16_777_217, 0, 3], pa.uint64()),
        "int8": pa.array([-128, 127, 0, 1, -1], pa.int8()),
        "float64": pa.array([1e39, -1e39, 0.1, float("nan"), float("inf")], pa.float64()),
        "float16": pa.array(np.array([0.5, 1.5, -2.0, 65504.0, 0.0], dtype=np.float16)),
        "bools": pa.array([True, False, True, True, False]),
        "with_null": pa.array([1.0, None, 3.0, 4.0, 5.0]),
    }
    table = pa.table(columns)
    inputs = [OnnxInput(name, name, "float") for name in columns]
    for data in (table, table.to_batches()[0], pa.concat_tables([table.slice(0, 2), table.slice(2)])):
        fed = feed_arrow(data, inputs)
        for name in columns:
            column = pa.chunked_array([data.column(name)]) if isinstance(data, pa.RecordBatch) else data.column(name)
            expected = pc.cast(column, pa.float32(), safe=False).to_numpy(zero_copy_only=False)
            assert fed[name].shape == (5, 1) and fed[name].dtype == np.float32, name
            np.testing.assert_array_equal(fed[name][:, 0], expected.astype(np.float32), err_msg=name)
