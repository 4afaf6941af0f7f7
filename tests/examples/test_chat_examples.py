"""Every chat example, run by each command its docstring gives, on a real server.

The page is served; two chatters in a room both get each message, a chatter
in another room does not; junk closes with its RFC 6455 code; SIGTERM stops
the server.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.examples._run import (
    EXAMPLES,
    ROOT,
    argv,
    check_chat,
    check_junk,
    docstring_commands,
    free_port,
    missing_modules,
    serving,
)

pytestmark = pytest.mark.live

CHATS = [
    "chat.py",
    "chat_flask.py",
    "chat_bottle.py",
    "chat_pyramid.py",
    "eventlet_server.py",
    "gevent_server.py",
    "werkzeug_server.py",
]


def _cases() -> list[object]:
    cases: list[object] = []
    for name in CHATS:
        path = EXAMPLES / name
        commands = docstring_commands(path) if path.exists() else ["(no such file)"]
        for command in commands:
            cases.append(pytest.param(name, command, id=f"{name}: {command}"))
    return cases


def test_docstrings_give_the_commands() -> None:
    """chat.py shows the launcher and both gunicorn workers; each other example its own run."""
    for name in CHATS:
        assert docstring_commands(EXAMPLES / name), f"{name}: no command in the docstring"
    commands = docstring_commands(EXAMPLES / "chat.py")
    assert ".venv/bin/python examples/chat.py" in commands
    workers = {c.split("-k ", 1)[1].split()[0] for c in commands if "gunicorn" in c}
    assert workers == {"gthread", "gevent"}
    assert all("-w 1" in c for c in commands if "gunicorn" in c), "rooms live in one process"


@pytest.mark.parametrize(("name", "command"), _cases())
def test_chat_example(name: str, command: str, tmp_path: Path) -> None:
    example = EXAMPLES / name
    assert example.exists(), f"{name} is missing"
    missing = missing_modules(example, command)
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (pip install -e '.[test]')")
    port = free_port()
    with serving(argv(command, port), port, tmp_path / "output.txt") as served:
        assert b"new WebSocket(" in served.page
        assert b'"/ws/"' in served.page
        check_chat(port)
        check_junk(port)


def test_tutorial_commands_are_the_examples() -> None:
    """The chat tutorial runs nothing the example's docstring (and so the tests) does not."""
    tutorial = ROOT / "docs" / "tutorial" / "chat.rst"
    shown = [
        line.strip()
        for line in tutorial.read_text(encoding="utf-8").splitlines()
        if line.startswith(" ") and line.strip().startswith(".venv/bin/")
    ]
    commands = docstring_commands(EXAMPLES / "chat.py")
    assert [c for c in shown if not c.startswith(".venv/bin/pip ")] == commands
