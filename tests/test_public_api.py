"""The public surface is exactly what ``wsgiws.__all__`` names."""

from __future__ import annotations

import importlib
import importlib.resources
import pkgutil

import pytest

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
    "shutdown",
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


#: The public modules besides the package itself: the test client, the framework
#: integrations, and ``python -m wsgiws``. Every other module is private.
PUBLIC_MODULES = {
    "wsgiws.__main__": set(),
    "wsgiws.testing": {"AppResponse", "HandshakeRejected", "TestClient", "TestWebSocket"},
    "wsgiws.flask": {"WebSockets"},
    "wsgiws.bottle": {"WebSocketPlugin"},
    "wsgiws.pyramid": {
        "WebSocketPredicate",
        "add_websocket_view",
        "includeme",
        "set_websocket_options",
    },
}


def test_every_other_module_is_private() -> None:
    found = set()
    for module in pkgutil.walk_packages(wsgiws.__path__, "wsgiws."):
        if module.name in PUBLIC_MODULES:
            found.add(module.name)
            continue
        parent = module.name.split(".")[1]
        assert parent.startswith("_"), f"{module.name} is importable as a public module"
        importlib.import_module(module.name)
    assert found == set(PUBLIC_MODULES)


@pytest.mark.parametrize("name", sorted(set(PUBLIC_MODULES) - {"wsgiws.__main__"}))
def test_public_modules_name_their_surface_and_document_it(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__doc__
    assert set(module.__all__) == PUBLIC_MODULES[name]
    for attr in module.__all__:
        assert getattr(module, attr).__doc__, f"{name}.{attr} has no docstring"


def test_the_command_line_module_does_nothing_when_imported() -> None:
    """``python -m wsgiws`` runs the launcher; importing the module must not."""
    module = importlib.import_module("wsgiws.__main__")
    assert callable(module.main)


def test_exceptions_share_one_root() -> None:
    for name in ("ConnectionClosed", "HandshakeError", "Reject", "UnsupportedServer"):
        assert issubclass(getattr(wsgiws, name), wsgiws.WebSocketError)
    assert issubclass(wsgiws.WebSocketError, Exception)


def test_typed_package() -> None:
    files = importlib.resources.files("wsgiws")
    assert files.joinpath("py.typed").is_file()
