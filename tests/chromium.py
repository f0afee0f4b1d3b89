"""Headless Chromium driven over the DevTools protocol, for tests that check pages in a
real browser: start it with a throw-away profile, call methods, read values, keep events."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="needs a `chromium` binary (Debian: apt-get install chromium)")


class DevTools:
    """A minimal Chrome DevTools Protocol client: one call at a time; the events that
    arrive meanwhile are kept in ``events``."""

    def __init__(self, url: str) -> None:
        from websockets.sync.client import connect

        self.ws = connect(url, max_size=None)
        self.last = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self.last += 1
        message: dict[str, Any] = {"id": self.last, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        while True:
            reply = json.loads(self.ws.recv(timeout=30))
            if reply.get("id") == self.last:
                assert "error" not in reply, reply
                return dict(reply["result"])
            if "method" in reply:
                self.events.append(reply)

    def evaluate(self, session: str, expression: str) -> Any:
        result = self.call("Runtime.evaluate", session, expression=expression,
                           returnByValue=True, awaitPromise=True)
        return result["result"].get("value")

    def wait_for(self, session: str, expression: str, value: Any, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while self.evaluate(session, expression) != value:
            assert time.monotonic() < deadline, f"{expression} never became {value!r}"
            time.sleep(0.05)

    def open_page(self, url: str) -> str:
        """A new tab at ``url``; returns its session id."""
        target = self.call("Target.createTarget", url=url)["targetId"]
        return str(self.call("Target.attachToTarget", targetId=target, flatten=True)
                   ["sessionId"])


@contextmanager
def headless_chromium(profile: Path) -> Iterator[DevTools]:
    """Chromium running headless with ``profile`` as its user folder, and a client
    connected to it; the browser is stopped on exit."""
    assert CHROMIUM is not None
    browser = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"  # chromium writes its port and path here
        deadline = time.monotonic() + 30
        while not (port_file.exists() and len(port_file.read_text().split()) == 2):
            assert browser.poll() is None and time.monotonic() < deadline, "no DevTools port"
            time.sleep(0.05)
        port, path = port_file.read_text().split()
        tools = DevTools(f"ws://127.0.0.1:{port}{path}")
        try:
            yield tools
        finally:
            tools.ws.close()
    finally:
        browser.terminate()
        browser.wait(timeout=15)
