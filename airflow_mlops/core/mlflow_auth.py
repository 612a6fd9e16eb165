"""Bearer-token auth for MLflow without touching ``os.environ``.

MLflow reads a token only from the process environment (``MLFLOW_TRACKING_TOKEN``), which would leak it
to every library and child process. Instead this module is registered as an MLflow request-header
provider (entry point ``mlflow.request_header_provider``); the MLflow hook sets the token here, in
process memory, and MLflow adds the header to each request it sends.
"""

from __future__ import annotations

import threading

from mlflow.tracking.request_header.abstract_request_header_provider import RequestHeaderProvider

_lock = threading.Lock()
_token: str | None = None


def set_token(token: str | None) -> None:
    """Set (or clear with ``None``) the bearer token sent with MLflow requests from this process."""
    global _token
    with _lock:
        _token = token or None


class BearerTokenHeaderProvider(RequestHeaderProvider):
    """Adds ``Authorization: Bearer <token>`` while a token is set."""

    def in_context(self) -> bool:
        return _token is not None

    def request_headers(self) -> dict[str, str]:
        token = _token
        return {"Authorization": f"Bearer {token}"} if token else {}
