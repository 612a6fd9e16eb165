"""Checks of feature transforms against the training spec they belong to, run when the spec is parsed.

What can be known without data is checked here: a transform that reads the target (leakage), a produced
column named like the target or the split column, and the types the grammar can infer (a derived feature
listed as numeric whose expression gives text, a date part of a number, ...). Column types the data
decides are checked again when the transforms first run (:mod:`.apply`).
"""

from __future__ import annotations

from typing import Any

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.features.spec import FeatureTransforms, static_kinds


def check_transforms(transforms: FeatureTransforms, spec: Any) -> None:
    """Refuse transforms that break the training spec (see the module docstring).

    :param spec: the :class:`~airflow_mlops.core.training.spec.TrainingSpec` being built.
    """
    if not transforms:
        return
    readers = transforms.readers()
    if spec.target in readers:
        raise SpecError(
            f"The target {spec.target!r} is {readers[spec.target]}: that is leakage (the feature would be computed "
            "from the answer). Remove it from the transform."
        )
    for reserved, what in ((spec.target, "the target"), (spec.split.column, "the time split column")):
        if reserved is not None and reserved in transforms.outputs:
            raise SpecError(f"A feature transform produces {reserved!r}, {what}; give the column another name.")
    for name, kind in static_kinds(transforms).items():
        if kind == "timestamp":
            raise SpecError(f"Derived feature {name!r} is a timestamp; a feature must be a number or a string.")
        if kind == "string" and name in spec.numeric_features:
            raise SpecError(
                f"Derived feature {name!r} gives text but is listed in features.numeric; list it in "
                "features.categorical or change its expression."
            )
