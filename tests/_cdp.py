"""A minimal Chrome DevTools Protocol client for the browser test (no selenium needed).

Starts headless Chromium on a free port, opens one page target and exchanges JSON messages
with it over a WebSocket (``websocket-client``, installed with Jupyter).
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import time
import urllib.request
from typing import Any

import websocket


class Browser:
    """Headless Chromium with one tab. Use as a context manager.

    Console errors, uncaught exceptions and failed resource loads of the current page
    collect in ``errors``; :meth:`goto` clears them.
    """

    def __init__(self, executable: str, width: int = 390, height: int = 844) -> None:
        self.width, self.height = width, height
        # chromium may still be writing its profile while it exits
        self._profile = tempfile.TemporaryDirectory(ignore_cleanup_errors=True)
        self.proc = subprocess.Popen(
            [executable, "--headless=new", "--no-sandbox", "--disable-gpu",
             "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
             "--disable-extensions", "--disable-background-networking",
             "--remote-debugging-port=0", f"--user-data-dir={self._profile.name}",
             f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        port = self._devtools_port()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            pages = [t for t in json.load(r) if t.get("type") == "page"]
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=60,
                                              suppress_origin=True)
        self._id = 0
        self.errors: list[str] = []
        self.events: list[dict] = []
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=True)

    def _devtools_port(self) -> int:
        deadline = time.monotonic() + 30
        assert self.proc.stderr is not None
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            match = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
            if match:
                return int(match.group(1))
            if not line and self.proc.poll() is not None:
                break
        raise RuntimeError("chromium did not start its DevTools server")

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self._profile.cleanup()

    # ------------------------------------------------------------------ protocol
    def _record(self, msg: dict) -> None:
        method, p = msg.get("method"), msg.get("params", {})
        if method == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            text = d.get("exception", {}).get("description") or d.get("text", "")
            self.errors.append(f"uncaught: {text.splitlines()[0] if text else d}")
        elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"])
            self.errors.append(f"console.{p['type']}: {args}")
        elif method == "Log.entryAdded" and p["entry"].get("level") == "error":
            e = p["entry"]
            self.errors.append(f"{e.get('source')}: {e.get('text')} {e.get('url', '')}".strip())
        elif method:
            self.events.append(msg)

    def send(self, method: str, **params: Any) -> dict:
        """Call ``method`` and return its result (events that arrive meanwhile are kept)."""
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self._record(msg)

    def wait_event(self, method: str, timeout: float) -> bool:
        """Wait for an event (True) or the timeout (False)."""
        for i, msg in enumerate(self.events):
            if msg["method"] == method:
                del self.events[: i + 1]
                return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.ws.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                msg = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                break
            finally:
                self.ws.settimeout(60)
            if msg.get("method") == method:
                self.events.clear()
                return True
            self._record(msg)
        return False

    def goto(self, url: str, timeout: float = 30) -> None:
        """Load ``url`` and wait for its load event; clears ``errors``."""
        self.errors = []
        self.events = []
        self.send("Page.navigate", url=url)
        if not self.wait_event("Page.loadEventFired", timeout):
            raise TimeoutError(f"{url} did not load in {timeout} s")

    def evaluate(self, expression: str, timeout: float = 30) -> Any:
        """Evaluate a JavaScript expression (promises are awaited) and return its value."""
        res = self.send("Runtime.evaluate", expression=expression, awaitPromise=True,
                        returnByValue=True, timeout=int(timeout * 1000))
        if "exceptionDetails" in res:
            raise RuntimeError(f"evaluate failed: {res['exceptionDetails'].get('text')}: "
                               f"{res['exceptionDetails'].get('exception', {})}")
        return res["result"].get("value")
