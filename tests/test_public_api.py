"""The public surface is exactly what ``wsgiws.__all__`` names."""

from __future__ import annotations

import importlib
import importlib.resources
import pkgutil

import wsgiws

PUBLIC = {
    "Accept",
    "AcceptHook",
    "ConnectionClosed",
    "Deflate",
    "Endpoint",
    "Handler",
    "HandshakeError",
    "Reject",
    "UnsupportedServer",
    "WebSocket",
    "WebSocketError",
    "WebSocketMiddleware",
    "__version__",
    "run",
}


def test_all_is_the_agreed_surface() -> None:
    assert set(wsgiws.__all__) == PUBLIC
    assert len(wsgiws.__all__) == len(PUBLIC)
    for name in wsgiws.__all__:
        assert hasattr(wsgiws, name)


def test_public_names_are_documented() -> None:
    for name in wsgiws.__all__:
        if name.startswith("__") or name in ("Handler", "AcceptHook"):  # type aliases
            continue
        assert getattr(wsgiws, name).__doc__, f"{name} has no docstring"


def test_every_module_is_private() -> None:
    for module in pkgutil.walk_packages(wsgiws.__path__, "wsgiws."):
        leaf = module.name.rsplit(".", 1)[-1]
        parent = module.name.split(".")[1]
        assert parent.startswith("_"), f"{module.name} is importable as a public module"
        importlib.import_module(module.name)
        assert leaf


def test_exceptions_share_one_root() -> None:
    for name in ("ConnectionClosed", "HandshakeError", "Reject", "UnsupportedServer"):
        assert issubclass(getattr(wsgiws, name), wsgiws.WebSocketError)
    assert issubclass(wsgiws.WebSocketError, Exception)


def test_typed_package() -> None:
    files = importlib.resources.files("wsgiws")
    assert files.joinpath("py.typed").is_file()
