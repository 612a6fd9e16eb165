"""Branching on a plain function of the run's context, for DAG files that must parse fast.

The standard provider's ``BranchPythonOperator`` and ``ShortCircuitOperator`` live in a module that
imports the virtualenv machinery (``packaging``, the package-index hook): about 20 ms of every parse
of a DAG file that uses them, more than the rest of a reference DAG's own imports. The SDK's
``BaseBranchOperator`` does the branching; this operator only calls the function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseBranchOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class BranchOnFunctionOperator(BaseBranchOperator):
    """Run the task ids (or task group ids) ``python_callable`` returns; skip the other direct downstream tasks.

    :param python_callable: called with the context's entries and ``op_kwargs`` as keyword arguments
        (so it should accept ``**_``); returns a task id, task group id, a list of them, or an empty
        list / None to skip every direct downstream task (a short-circuit).
    :param op_kwargs: extra keyword arguments for the callable.
    """

    def __init__(
        self,
        *,
        python_callable: Callable[..., str | Iterable[str] | None],
        op_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not callable(python_callable):
            raise TypeError(f"python_callable must be callable. Got {python_callable!r} instead.")
        self.python_callable = python_callable
        self.op_kwargs = dict(op_kwargs or {})

    def choose_branch(self, context: Context) -> str | Iterable[str] | None:
        return self.python_callable(**{**context, **self.op_kwargs})
