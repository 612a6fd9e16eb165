"""The registry stem's exceptions, and how to read an MLflow error's code."""

from __future__ import annotations

from airflow_mlops.core.errors import MlopsError


class ChampionMoved(MlopsError):
    """The alias does not point where the caller expected: someone promoted meanwhile."""

    def __init__(self, name: str, alias: str, expected: str | None, actual: str | None) -> None:
        self.name, self.alias, self.expected, self.actual = name, alias, expected, actual
        super().__init__(
            f"The {alias!r} alias of model {name!r} points at version {actual or 'none'}, but this promotion "
            f"expected version {expected or 'none'} (the one the gate evaluated). Another promotion moved it "
            "meanwhile; nothing was changed. Re-run the gate against the new champion."
        )


class VersionNotPromotable(MlopsError, ValueError):
    """The version cannot take the alias: missing, not READY, or its registration is incomplete."""


class RegistryLockTimeout(MlopsError, TimeoutError):
    """Another promotion of the same model held the lease for longer than we were willing to wait."""


class RegistryLeaseLost(MlopsError, TimeoutError):
    """The lease expired or was taken over before the alias moved (the holder stalled); nothing changed."""


def _error_code(exc: BaseException) -> str | None:
    return getattr(exc, "error_code", None)


def _mlflow_exception() -> type[Exception]:
    from mlflow.exceptions import MlflowException

    return MlflowException
