"""Headless Chromium, driven over the Chrome DevTools Protocol with a plain WebSocket client.

No Selenium, WebDriver or Playwright: the DevTools Protocol is JSON over a
WebSocket, and the ``websockets`` client the other tests use speaks it. The
browser is started with a throwaway profile and ``--remote-debugging-port=0``;
it writes the port it chose, and the path of the browser's DevTools endpoint,
to ``DevToolsActivePort`` in the profile directory. Each tab is a target
attached in "flatten" mode: commands to it go over the same connection with
its ``sessionId`` (https://chromedevtools.github.io/devtools-protocol/).

Chromium and every process it starts run in a process group of their own,
killed when :func:`chromium` exits, whatever happened; what they print goes
to a file, and only its last lines are shown, when a test fails.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
from websockets.sync.client import ClientConnection, connect

from tests.conftest import timeout

#: The flags CI runs Chromium with (headless in a container, as root, nothing
#: phoning home), then what this driver needs.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
]


def find_chromium() -> str:
    """The Chromium executable, or skip saying how to get it."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium)")
    return found


class DevTools:
    """One DevTools Protocol connection to the browser: commands, and the tabs' sessions."""

    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection
        self._ids = itertools.count(1)

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Run ``method`` (in the tab of ``session``, or on the browser); its result.

        Events that arrive meanwhile are not needed here and are dropped.
        """
        command: dict[str, Any] = {"id": next(self._ids), "method": method, "params": params}
        if session is not None:
            command["sessionId"] = session
        self._connection.send(json.dumps(command))
        deadline = time.monotonic() + timeout(30)
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no answer from Chromium to {method}"
            message = json.loads(self._connection.recv(timeout=left))
            if message.get("id") == command["id"]:
                assert "error" not in message, f"{method} failed: {message['error']}"
                return message["result"]  # type: ignore[no-any-return]

    def open_tab(self, url: str) -> Tab:
        """A new tab showing ``url``, attached."""
        target = self.send("Target.createTarget", url=url)["targetId"]
        session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        tab = Tab(self, session)
        # createTarget returns before the page has loaded (the tab may still
        # show about:blank): wait until the document at ``url`` is complete.
        tab.wait_for(
            "[location.href, document.readyState]",
            lambda state: state == [url, "complete"],
            f"{url} did not load",
        )
        return tab


class Tab:
    """One attached page."""

    def __init__(self, devtools: DevTools, session: str) -> None:
        self.devtools = devtools
        self.session = session

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.devtools.send(
            "Runtime.evaluate",
            self.session,
            expression=expression,
            returnByValue=True,
            awaitPromise=True,
        )
        assert "exceptionDetails" not in result, f"{expression}: {result['exceptionDetails']}"
        return result["result"].get("value")

    def insert_text(self, text: str) -> None:
        """Type ``text`` into the focused element, as an input method would."""
        self.devtools.send("Input.insertText", self.session, text=text)

    def wait_for(self, expression: str, until: Callable[[Any], bool], what: str) -> Any:
        """Evaluate ``expression`` until ``until(value)``; bounded. The last value."""
        deadline = time.monotonic() + timeout(20)
        while True:
            value = self.evaluate(expression)
            if until(value):
                return value
            assert time.monotonic() < deadline, f"{what}: still {value!r}"
            time.sleep(0.05)


@contextlib.contextmanager
def chromium(profile: Path) -> Iterator[DevTools]:
    """Headless Chromium with a fresh profile in ``profile``; its DevTools connection."""
    executable = find_chromium()
    profile.mkdir()
    log = profile.parent / "chromium.log"
    command = [
        executable,
        *FLAGS,
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        "--no-first-run",
        "--disable-component-update",
        "--disable-sync",
        "about:blank",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = _devtools_url(profile / "DevToolsActivePort", proc)
        with connect(
            url, max_size=None, open_timeout=timeout(20), close_timeout=timeout(5)
        ) as connection:
            yield DevTools(connection)
    except BaseException:
        lines = log.read_text(errors="replace").splitlines()
        print("Chromium's last words:", *lines[-20:], sep="\n  ")
        raise
    finally:
        _kill_group(proc)


def _devtools_url(active_port: Path, proc: subprocess.Popen[bytes]) -> str:
    """Wait (bounded) for Chromium to write the port and path of its DevTools endpoint."""
    deadline = time.monotonic() + timeout(30)
    while True:
        assert proc.poll() is None, f"Chromium exited with code {proc.returncode}"
        with contextlib.suppress(FileNotFoundError):
            lines = active_port.read_text().splitlines()
            if len(lines) >= 2:  # written whole? (the port, then the browser's path)
                return f"ws://127.0.0.1:{int(lines[0])}{lines[1]}"
        assert time.monotonic() < deadline, "Chromium did not open its DevTools port"
        time.sleep(0.05)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop Chromium's process group: SIGTERM, then SIGKILL for what is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout(10))
    # The browser's helpers (zygote, renderers, utility processes) share its
    # group; whatever has not exited by now is killed with it.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout(10))


def processes_using(profile: Path) -> list[int]:
    """The processes whose command line names ``profile`` (Chromium's, by its flag)."""
    found = []
    needle = f"--user-data-dir={profile}".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if needle in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
    return found
