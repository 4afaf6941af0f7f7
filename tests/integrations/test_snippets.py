"""The snippets the framework pages of the docs include (docs/frameworks/snippets) run as shown."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from ._wsgi import Upgrade
from ._wsgi import request as http

SNIPPETS = Path(__file__).resolve().parents[2] / "docs" / "frameworks" / "snippets"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"snippet_{name}", SNIPPETS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Pyramid's Configurator finds its caller's package through sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["flask_chat", "bottle_chat", "pyramid_chat"])
def test_chat_snippet_signs_in_over_http_and_chats_over_a_websocket(name: str) -> None:
    pytest.importorskip(name.split("_")[0], reason="the frameworks are in the test extra")
    app = load(name).app
    resp = http(app, "/login?user=alice")
    assert resp.status_code == 200
    cookie = resp.headers["Set-Cookie"].split(";")[0]
    up = Upgrade(app, "/rooms/7", {"Cookie": cookie})
    up.read_101()
    assert up.peer.receive() == "alice joined room 7"
    up.peer.send("hi")
    assert up.peer.receive() == "alice@7: hi"
    up.finish()
    if name != "pyramid_chat":
        # The upload route's own limit is above the app's 64 KiB.
        up = Upgrade(app, "/upload")
        up.read_101()
        up.peer.send(b"x" * 100_000)
        assert up.peer.receive() == "received 100000 bytes"
        assert up.peer.expect_close().code == 1000
        up.join()


def test_pyramid_snippet_shares_the_url_with_a_page() -> None:
    pytest.importorskip("pyramid", reason="Pyramid is in the test extra")
    resp = http(load("pyramid_chat").app, "/rooms/7")
    assert resp.status_code == 200
    assert b"open a WebSocket" in resp.data
