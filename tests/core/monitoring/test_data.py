"""The checks on the data a model reads (core.monitoring.data): values that pass and values that must alert."""

from __future__ import annotations

import numpy as np

from airflow_mlops.core import monitoring as m
from tests.support.data import flights


def test_schema_change_alerts_only_when_a_feature_breaks() -> None:
    before = {"carrier": "string", "distance": "double", "tailnum": "string"}
    assert m.check_schema_change(before, dict(before), features=["carrier"]).severity == "ok"
    added = m.check_schema_change(before, {**before, "wind": "double"}, features=["carrier", "distance"])
    assert added.severity == "warn" and added.details["added"] == ["wind"]
    gone = {k: v for k, v in before.items() if k != "tailnum"}
    assert m.check_schema_change(before, gone, features=["carrier", "distance"]).severity == "warn"
    retyped = m.check_schema_change(before, {**before, "distance": "string"}, features=["carrier", "distance"])
    assert retyped.is_alert and retyped.details["breaking_features"] == ["distance"]


def test_personal_data_is_found_in_real_text_columns_only_when_present() -> None:
    frame = flights(months=[1], sample=2000)
    text = {c: frame[c].tolist() for c in ("carrier", "tailnum", "origin", "dest")}
    assert m.check_personal_data(text).severity == "ok"  # codes and tail numbers are not personal data
    rng = np.random.default_rng(0)
    contacts = {
        "contact": [f"user{i}@example.org" for i in range(100)],
        "card": ["4111 1111 1111 1111"] * 50 + ["1234 5678 9012 3456"] * 50,  # Luhn-valid, then not
        "passenger_name": ["x"] * 100,
        "misc": [f"{rng.integers(100, 999)}-{rng.integers(10, 99)}-{rng.integers(1000, 9999)}" for _ in range(100)],
    }
    found = m.check_personal_data({**text, **contacts})
    assert found.is_alert
    suspect = found.details["suspect"]
    assert suspect["contact"]["patterns"] == {"email": 1.0} and suspect["card"]["patterns"] == {"payment_card": 0.5}
    assert suspect["passenger_name"]["name_suggests_personal_data"] and suspect["misc"]["patterns"] == {"us_ssn": 1.0}
    assert set(suspect) == {"contact", "card", "passenger_name", "misc"}
    reviewed = m.check_personal_data({**text, **contacts}, allow=["contact", "card", "passenger_name", "misc"])
    assert reviewed.severity == "ok"
