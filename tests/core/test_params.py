from __future__ import annotations

import pytest

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.params import parse_flag, parse_number


@pytest.mark.parametrize("raw", [True, "True", " true ", "1", "yes", "ON", 1])
def test_true_spellings(raw: object) -> None:
    assert parse_flag(raw, "The 'force' argument") is True


@pytest.mark.parametrize("raw", [False, "False", "0", "no", "off", "", "None", None, 0])
def test_false_spellings(raw: object) -> None:
    assert parse_flag(raw, "The 'force' argument") is False


@pytest.mark.parametrize("raw", ["maybe", "2", "truthy", 0.5])
def test_anything_else_is_refused_naming_the_parameter(raw: object) -> None:
    with pytest.raises(SpecError, match=r"The 'force' argument must be true or false\. Got .* instead\."):
        parse_flag(raw, "The 'force' argument")


@pytest.mark.parametrize("raw", ["-1", "many", True, None, "2.5"], ids=["negative", "word", "bool", "none", "fraction"])
def test_parse_number_names_the_parameter(raw: object) -> None:
    with pytest.raises(SpecError, match="'window' parameter must be an integer >= 1"):
        parse_number(raw, "window", low=1, integer=True)
    assert parse_number("0.5", "max_drop") == 0.5 and parse_number(10, "window", low=1, integer=True) == 10
