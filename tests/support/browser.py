"""Headless Chromium driven over the DevTools protocol: open an Airflow UI page as a signed-in user.

The Airflow 3 UI authenticates its API calls with the ``_token`` cookie that the login flow sets
(``airflow.api_fastapi.auth.managers.base_auth_manager.COOKIE_NAME_JWT_TOKEN``). Setting that cookie
to a token from ``POST /auth/token`` before the first navigation is what a signed-in browser has.
The protocol is spoken through ``websockets`` (already installed with Airflow's api-server), so no
browser-automation package is needed.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
TOKEN_COOKIE = "_token"


def chromium_binary() -> str | None:
    for candidate in CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


@dataclass
class PageState:
    url: str
    text: str
    links: list[tuple[str, str]]  # (text, href) of every <a> on the page


class Page:
    """One browser tab over a DevTools websocket."""

    def __init__(self, socket: Any) -> None:
        self._socket = socket
        self._ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        self._socket.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv(timeout=60))
            if message.get("id") != call_id:
                continue  # an event, or an answer to nothing we wait for
            if "error" in message:
                raise RuntimeError(f"DevTools {method} failed: {message['error']}")
            return dict(message.get("result") or {})

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return (result.get("result") or {}).get("value")

    def state(self) -> PageState:
        value = self.evaluate(
            "JSON.stringify({url: location.href, text: document.body ? document.body.innerText : '',"
            " links: [...document.querySelectorAll('a')].map(a => [a.textContent.trim(), a.href])})"
        )
        data = json.loads(value or '{"url": "", "text": "", "links": []}')
        return PageState(data["url"], data["text"], [tuple(link) for link in data["links"]])

    def open(self, url: str, *, cookies: dict[str, str] | None = None) -> None:
        self.call("Network.enable")
        self.call("Page.enable")
        for name, value in (cookies or {}).items():
            self.call("Network.setCookie", name=name, value=value, url=url, httpOnly=True, sameSite="Lax")
        self.call("Page.navigate", url=url)

    def wait_for(self, predicate: Any, timeout: float = 60.0) -> PageState:
        """Poll the rendered page (the UI is a single-page app) until ``predicate(state)`` holds."""
        deadline = time.monotonic() + timeout
        state = self.state()
        while not predicate(state):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the page never showed what was expected within {timeout:.0f} s; at {state.url} it shows:\n"
                    f"{state.text[:3000]}\nlinks: {state.links}"
                )
            time.sleep(1)
            state = self.state()
        return state

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path


@contextlib.contextmanager
def headless_chromium(binary: str, log: Path, width: int = 1600, height: int = 1000) -> Iterator[Page]:
    """Start headless Chromium with a private profile; yield its first tab; stop it afterwards."""
    import httpx
    from websockets.sync.client import connect

    with tempfile.TemporaryDirectory(prefix="mlops-chromium-") as profile, open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--no-default-browser-check", "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0", f"--user-data-dir={profile}", f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + 60
            while not (port_file.exists() and port_file.read_text().strip()):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Chromium did not open its DevTools port:\n{log.read_text(errors='replace')}")
                time.sleep(0.2)
            port = int(port_file.read_text().splitlines()[0])
            targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
            page_url = next(t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page")
            with connect(page_url, max_size=None, open_timeout=30) as socket:
                yield Page(socket)
        finally:
            # Renderer and GPU processes share the browser's process group: stop them all.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
