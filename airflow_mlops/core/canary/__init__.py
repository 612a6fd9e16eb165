"""Canary: a gated candidate waits as the ``challenger`` alias, shadow-scored beside the champion on real
batches, until its shadow batches say to promote or drop it. ``policy`` holds the settings
(``CanaryPolicy``), ``verdict`` the decision on the batches' figures (``ShadowBatch``, ``judge``,
``CanaryVerdict``), ``record`` what the registry and the evidence bundle keep of it (``name_challenger``,
``drop_challenger``, ``record_verdict``)."""

from __future__ import annotations

from airflow_mlops.core.canary.policy import CanaryPolicy
from airflow_mlops.core.canary.verdict import CanaryVerdict, ShadowBatch, judge, merge

__all__ = ["CanaryPolicy", "CanaryVerdict", "ShadowBatch", "judge", "merge"]
