"""The scoring request built from rendered templates."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.scoring.spec import ScoringSpec


def test_scoring_spec_from_rendered_templates() -> None:
    spec = ScoringSpec.from_mapping(
        {
            "pipeline": "flights", "partition": "2013-02-01T00:00:00+00:00", "input_uri": "s3://b/k/",
            "scored_at": "2013-02-01T00:00:00", "passthrough_columns": "flight, tailnum", "chunk_rows": "1000",
            "threads": "2", "serving_log_rows": "0", "explain_top_k": "2",
        }
    )  # fmt: skip
    assert spec.scored_at == datetime(2013, 2, 1, tzinfo=UTC)
    assert spec.passthrough_columns == ("flight", "tailnum")
    assert (spec.chunk_rows, spec.threads, spec.serving_log_rows, spec.explain_top_k) == (1000, 2, 0, 2)
    base = {"pipeline": "p", "partition": "x", "input_uri": "/d", "scored_at": "2013-02-01T00:00:00Z"}
    assert ScoringSpec.from_mapping({**base, "passthrough_columns": '["a", "b"]'}).passthrough_columns == ("a", "b")
    for bad, message in [
        ({"chunk_rows": "lots"}, "'chunk_rows' parameter must be an integer >= 1 and <= 4194304. Got 'lots'"),
        ({"chunk_rows": 0}, "'chunk_rows' parameter must be an integer >= 1 and <= 4194304. Got 0"),
        ({"chunk_rows": "4194305"}, "'chunk_rows' parameter must be an integer >= 1 and <= 4194304. Got '4194305'"),
        ({"threads": True}, "'threads'"),
        ({"partition": "../up"}, "partition key"),
        ({"input_uri": "ftp://x"}, "local paths, file:// or s3://"),
        ({"scored_at": "yesterday"}, "ISO 8601"),
        ({"passthrough_columns": "a,a"}, "twice"),
        ({"pipeline": ""}, "'pipeline' parameter of the scoring spec is required"),
    ]:
        with pytest.raises(SpecError, match=message):
            ScoringSpec.from_mapping({**base, **bad})
    built = {"pipeline": "p", "partition": "x", "input_uri": "/d", "scored_at": datetime(2013, 2, 1, tzinfo=UTC)}
    with pytest.raises(SpecError, match=r"'chunk_rows' parameter must be an integer >= 1 and <= 4194304\. Got '5'"):
        ScoringSpec(**built, chunk_rows="5")  # a built spec holds ints: strings are parsed by from_mapping only
