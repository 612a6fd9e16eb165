"""Feature transforms that travel with the model: derived columns and dimension joins, declared in the
training spec and run by one code path (DuckDB over Arrow) at training, serving, the skew check, drift,
explanation and the backtest.

Public API: ``FeatureTransforms``, ``DerivedFeature``, ``JoinSpec``, ``AsOf`` (``spec``: the declaration),
``Transformer``, ``bind`` (``apply``: run them on record batches, tables or frames), ``Dimension``,
``load_dimensions``, ``dimension_uri`` (``dimensions``: the joined tables, read once per task),
``check_transforms``, ``static_kinds`` (``validate``: checks against the training spec), ``FUNCTIONS``,
``parse`` (``grammar``: the whitelisted expression language, over ``syntax``: its parser).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_mlops.core._exports import lazy_exports

if TYPE_CHECKING:
    from airflow_mlops.core.features.apply import Transformer, bind
    from airflow_mlops.core.features.dimensions import Dimension, dimension_uri, load_dimensions
    from airflow_mlops.core.features.grammar import FUNCTIONS, parse
    from airflow_mlops.core.features.spec import AsOf, DerivedFeature, FeatureTransforms, JoinSpec, static_kinds
    from airflow_mlops.core.features.validate import check_transforms

__all__ = [
    "FUNCTIONS",
    "AsOf",
    "DerivedFeature",
    "Dimension",
    "FeatureTransforms",
    "JoinSpec",
    "Transformer",
    "bind",
    "check_transforms",
    "dimension_uri",
    "load_dimensions",
    "parse",
    "static_kinds",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Transformer": "apply",
        "bind": "apply",
        "Dimension": "dimensions",
        "dimension_uri": "dimensions",
        "load_dimensions": "dimensions",
        "FUNCTIONS": "grammar",
        "parse": "grammar",
        "AsOf": "spec",
        "DerivedFeature": "spec",
        "FeatureTransforms": "spec",
        "JoinSpec": "spec",
        "check_transforms": "validate",
        "static_kinds": "spec",
    },
)
