from __future__ import annotations

import pytest

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.params import parse_flag, parse_integer, parse_number


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


@pytest.mark.parametrize("raw", [5000, "5000", " 5000 ", 5000.0, "5e3"], ids=["int", "text", "spaces", "float", "exp"])
def test_parse_integer_reads_whole_numbers_as_int(raw: object) -> None:
    value = parse_integer(raw, "The 'chunk_rows' parameter of IngestSpec", low=1, high=10_000_000)
    assert value == 5000 and type(value) is int


@pytest.mark.parametrize(
    "raw", ["0", "10000001", "many", "2.5", True, None, "nan", "inf"], ids=lambda v: f"{type(v).__name__}-{v}"
)
def test_parse_integer_refuses_anything_else_naming_the_parameter_and_its_bounds(raw: object) -> None:
    message = r"The 'chunk_rows' parameter of IngestSpec must be an integer in \[1, 10000000\]\. Got .* instead\."
    with pytest.raises(SpecError, match=message):
        parse_integer(raw, "The 'chunk_rows' parameter of IngestSpec", low=1, high=10_000_000)


def test_parse_integer_without_an_upper_bound() -> None:
    assert parse_integer("12", "The 'rows' argument") == 12
    with pytest.raises(SpecError, match=r"The 'rows' argument must be an integer >= 0\. Got '-1' instead\."):
        parse_integer("-1", "The 'rows' argument")
