"""The chat of examples/chat.py in a real browser: headless Chromium, three tabs, two rooms.

The page's own JavaScript does the WebSocket work (the browser's handshake,
permessage-deflate, masking); the test types into the form as a user would
and reads what the page shows.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.browser._chromium import Tab, chromium, find_chromium, processes_using
from tests.examples._run import argv, free_port, serving

pytestmark = [pytest.mark.live, pytest.mark.browser]

#: The lines of a tab's message log, as shown.
LOG = "[...document.querySelectorAll('#log li')].map((item) => item.textContent)"


def wait_connected(tab: Tab) -> None:
    tab.wait_for(
        "document.getElementById('status').textContent",
        lambda status: status == "connected",
        "the page did not connect",
    )


def say(tab: Tab, name: str, text: str) -> None:
    """Fill in the name, type the message, press Send."""
    tab.evaluate(f"document.getElementById('name').value = {json.dumps(name)}")
    tab.evaluate("document.getElementById('text').focus()")
    tab.insert_text(text)
    tab.evaluate("document.getElementById('send').click()")


def wait_for_line(tab: Tab, line: str) -> list[str]:
    """Wait until ``line`` is in the tab's log; the log."""
    return tab.wait_for(LOG, lambda log: line in log, f"{line!r} never showed")  # type: ignore[no-any-return]


def test_chat_in_chromium(tmp_path: Path) -> None:
    find_chromium()  # skip before starting the server when there is no browser
    port = free_port()
    command = argv(".venv/bin/python examples/chat.py", port)
    profile = tmp_path / "profile"
    with serving(command, port, tmp_path / "server.txt"), chromium(profile) as devtools:
        lobby = f"http://127.0.0.1:{port}/?room=lobby"
        first, second = devtools.open_tab(lobby), devtools.open_tab(lobby)
        kitchen = devtools.open_tab(f"http://127.0.0.1:{port}/?room=kitchen")
        for tab in (first, second, kitchen):
            wait_connected(tab)
        # Each tab's own echo proves the server put it in its room, so no
        # message below is sent before everyone who should get it is there.
        say(first, "ann", "ann joined")
        wait_for_line(first, "ann: ann joined")
        say(second, "ada", "ada joined")
        wait_for_line(second, "ada: ada joined")
        say(kitchen, "bob", "bob joined")
        wait_for_line(kitchen, "bob: bob joined")

        message = "<b>hello</b> from the first tab"
        say(first, "ann", message)
        # Shown as typed: the markup is text (textContent), not an element.
        assert wait_for_line(second, f"ann: {message}")[-1] == f"ann: {message}"
        wait_for_line(first, f"ann: {message}")
        assert first.evaluate("document.querySelectorAll('#log b').length") == 0
        assert first.evaluate("document.getElementById('text').value") == ""

        # The server queued the lobby's messages for everyone in it before it
        # read the next: had one reached the kitchen, it would show there
        # before what the kitchen says after it.
        say(first, "ann", "anyone else?")
        wait_for_line(second, "ann: anyone else?")
        say(kitchen, "bob", "just me here")
        assert wait_for_line(kitchen, "bob: just me here") == [
            "bob: bob joined",
            "bob: just me here",
        ]
        assert "bob: just me here" not in second.evaluate(LOG)

    assert processes_using(profile) == [], "Chromium outlived the test"
