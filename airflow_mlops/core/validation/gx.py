"""Importing Great Expectations: inside the functions that use it, and without its INFO chatter.

Importing great_expectations alone takes 10-20 s cold, so no module of this package imports it at the
top: operator modules import them while DAG files parse.
"""

from __future__ import annotations

from typing import Any


def import_gx() -> Any:
    """Import great_expectations with its INFO chatter kept out of task logs.

    GX logs a line per decorated function while it imports, and pins one module logger to INFO (a
    line per context created). Unless someone configured the ``great_expectations`` logger, raise it to
    WARNING and let that module logger inherit it.
    """
    import logging

    logger = logging.getLogger("great_expectations")
    quiet = logger.level == logging.NOTSET
    if quiet:
        logger.setLevel(logging.WARNING)
    import great_expectations

    pinned = logging.getLogger("great_expectations.data_context.types.base")
    if (quiet or logger.level >= logging.WARNING) and pinned.level == logging.INFO:
        pinned.setLevel(logging.NOTSET)
    return great_expectations
