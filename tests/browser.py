"""Headless Chromium (Debian's `chromium`) driven through the DevTools protocol over a pipe (fds 3 and 4: no port
is opened): load a page, run JavaScript in it, take a screenshot, and see every request it tries and every console
or CSP message."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any


def chromium_path() -> str | None:
    return next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser")) if p), None)


class Browser:
    def __init__(self, exe: str, width: int = 1400, height: int = 1000) -> None:
        self.profile = tempfile.mkdtemp(prefix="arl-chromium-")
        to_child, self._w = os.pipe()
        self._r, from_child = os.pipe()

        def fds() -> None:  # the child reads commands on fd 3 and answers on fd 4
            a, b = os.dup(to_child), os.dup(from_child)
            os.dup2(a, 3)
            os.dup2(b, 4)

        argv = [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--remote-debugging-pipe",
            "--no-first-run",
            f"--user-data-dir={self.profile}",
            f"--window-size={width},{height}",
            "--hide-scrollbars",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "about:blank",
        ]
        self.proc = subprocess.Popen(
            argv, preexec_fn=fds, pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        os.close(to_child)
        os.close(from_child)
        self._buf = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.call(f"{domain}.enable", session=True)
        self.call(
            "Emulation.setDeviceMetricsOverride",
            session=True,
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def _read(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buf:
            import select

            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._r], [], [], left)[0]:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium exited")
            self._buf += chunk
        msg, _, self._buf = self._buf.partition(b"\0")
        return json.loads(msg)

    def call(self, method: str, session: bool = False, timeout: float = 60, **params: Any) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        while True:
            m = self._read(timeout)
            if m.get("id") == self._id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def wait_event(self, method: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for i, e in enumerate(self.events):
            if e.get("method") == method:
                return self.events.pop(i)
        while True:
            m = self._read(max(deadline - time.monotonic(), 0.01))
            if m.get("method") == method:
                return m
            self.events.append(m)

    def load(self, url: str, timeout: float = 60) -> None:
        """A fresh load (by way of about:blank: a URL that differs only in its fragment would not reload)."""
        for target in ("about:blank", url):
            self.events = [e for e in self.events if e.get("method") != "Page.loadEventFired"]
            self.call("Page.navigate", session=True, url=target)
            self.wait_event("Page.loadEventFired", timeout)

    def js(self, expression: str, timeout: float = 60) -> Any:
        r = self.call(
            "Runtime.evaluate",
            session=True,
            timeout=timeout,
            expression=expression,
            returnByValue=True,
            awaitPromise=True,
        )
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression[:80]}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def screenshot(self, path: Path, clip_selector: str | None = None) -> bytes:
        params: dict[str, Any] = {"format": "png"}
        if clip_selector:
            box = self.js(
                f"(() => {{ const b = document.querySelector({json.dumps(clip_selector)})"
                ".getBoundingClientRect(); return [b.x + scrollX, b.y + scrollY, b.width, b.height]; })()"
            )
            params["clip"] = {"x": box[0], "y": box[1], "width": box[2], "height": box[3], "scale": 1}
            params["captureBeyondViewport"] = True
        data = base64.b64decode(self.call("Page.captureScreenshot", session=True, **params)["data"])
        path.write_bytes(data)
        return data

    def requests(self) -> list[str]:
        """Every URL the page sent a request to since it was opened (the document itself included); the ones its
        Content-Security-Policy stopped before they left are not counted."""
        self.js("1")  # drain what has arrived
        blocked = {
            e["params"]["requestId"]
            for e in self.events
            if e.get("method") == "Network.loadingFailed" and e["params"].get("blockedReason")
        }
        return [
            e["params"]["request"]["url"]
            for e in self.events
            if e.get("method") == "Network.requestWillBeSent" and e["params"]["requestId"] not in blocked
        ]

    def messages(self) -> list[str]:
        self.js("1")
        out = [e["params"]["entry"].get("text", "") for e in self.events if e.get("method") == "Log.entryAdded"]
        out += [
            " ".join(str(a.get("value", a.get("description", ""))) for a in e["params"].get("args", []))
            for e in self.events
            if e.get("method") == "Runtime.consoleAPICalled"
        ]
        return out

    def exceptions(self) -> list[str]:
        """The uncaught JavaScript exceptions of the pages opened so far."""
        self.js("1")
        return [str(e["params"]["exceptionDetails"].get("exception", {}).get("description", e["params"]))
                for e in self.events if e.get("method") == "Runtime.exceptionThrown"]  # fmt: skip

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._w)
        os.close(self._r)
        shutil.rmtree(self.profile, ignore_errors=True)
