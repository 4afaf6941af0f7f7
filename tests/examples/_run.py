"""Run an example the way its docstring says, and talk to it as a user's browser would.

The commands are read from the example's module docstring, so a docstring that
tells users something that does not work fails a test: every indented line of
the docstring that starts with ``.venv/bin/`` is a command, except ``pip``
installs. A command runs from the repository root with this interpreter
(``.venv/bin/python`` → ``sys.executable``, ``.venv/bin/gunicorn`` →
``sys.executable -m gunicorn``), on a free port given with the option the tool
takes (``--port``, or gunicorn's ``--bind``).
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.conftest import timeout

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

#: The programs a docstring command may start with, and how to run each here.
_TOOLS = {"python": [], "gunicorn": ["-m", "gunicorn"], "flask": ["-m", "flask"]}


def free_port() -> int:
    """A port nothing listens on right now (the example wants a real number, not 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_serving(url: str, proc: subprocess.Popen[bytes]) -> bytes:
    """Poll ``GET url`` until it answers 200; return the body."""
    deadline = time.monotonic() + timeout(20)
    while True:
        assert proc.poll() is None, f"the example exited with code {proc.returncode}"
        try:
            with urllib.request.urlopen(url, timeout=timeout(5)) as response:
                if response.status == 200:
                    return response.read()  # type: ignore[no-any-return]
        except (urllib.error.URLError, ConnectionError):
            pass
        assert time.monotonic() < deadline, f"the example did not answer at {url}"
        time.sleep(0.05)


def docstring_commands(example: Path) -> list[str]:
    """The commands the module docstring of ``example`` tells users to run."""
    docstring = ast.get_docstring(ast.parse(example.read_text(encoding="utf-8")))
    assert docstring, f"{example.name} has no module docstring"
    return [
        line.strip()
        for line in docstring.splitlines()
        if line.startswith(" ")
        and line.strip().startswith(".venv/bin/")
        # Installing is the reader's business; the test environment has it all.
        and not line.strip().startswith(".venv/bin/pip ")
    ]


def argv(command: str, port: int) -> list[str]:
    """``command`` as run here: this interpreter, listening on ``port``."""
    words = shlex.split(command)
    tool = words[0].removeprefix(".venv/bin/")
    assert tool in _TOOLS, f"no rule to run {words[0]!r} (from {command!r})"
    words = [sys.executable, *_TOOLS[tool], *words[1:]]
    option, value = ("--bind", f"127.0.0.1:{port}") if tool == "gunicorn" else ("--port", str(port))
    for flag in (option, "-b") if tool == "gunicorn" else (option,):
        if flag in words:
            words[words.index(flag) + 1] = value
            return words
    return [*words, option, value]


def missing_modules(example: Path, command: str) -> list[str]:
    """The third-party modules the example or the command needs that are not installed."""
    tree = ast.parse(example.read_text(encoding="utf-8"))
    needed = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
    }
    words = shlex.split(command)
    if words[0].endswith("gunicorn"):
        needed.add("gunicorn")
        if "-k" in words:
            needed.add(words[words.index("-k") + 1])  # gevent, eventlet: the worker's library
    if words[0].endswith("flask"):
        needed.add("flask")
    local = {path.stem for path in EXAMPLES.glob("*.py")} | {"wsgiws", "gthread", "sync"}
    return sorted(name for name in needed - local if importlib.util.find_spec(name) is None)


@dataclass
class Served:
    """An example running on a port, with what it printed so far."""

    port: int
    page: bytes
    output: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


@contextlib.contextmanager
def serving(command: list[str], port: int, output: Path) -> Iterator[Served]:
    """Run ``command`` from the repository root until the page at / answers; stop it after.

    The example runs in a process group of its own (gunicorn has workers),
    gets SIGTERM, as from a service manager, when the block ends, and must exit
    within a bounded time; whatever is left of its group is then killed.
    """
    with output.open("wb") as out:
        proc = subprocess.Popen(
            command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        page = wait_until_serving(f"http://127.0.0.1:{port}/?room=lobby", proc)
        yield Served(port, page, output)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout(20))
        except subprocess.TimeoutExpired:
            pytest.fail(f"{shlex.join(command)} did not exit on SIGTERM")
    except BaseException:
        print(f"$ {shlex.join(command)}\n{output.read_text(errors='replace')}")
        raise
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout(10))


# -- the chat, as a browser speaks it ------------------------------------------


def chat_client(port: int, room: str) -> contextlib.AbstractContextManager[ClientConnection]:
    return connect(
        f"ws://127.0.0.1:{port}/ws/{room}",
        open_timeout=timeout(10),
        close_timeout=timeout(10),
    )


def say(client: ClientConnection, name: str, text: str) -> None:
    client.send(json.dumps({"name": name, "text": text}))


def heard(client: ClientConnection) -> dict[str, Any]:
    """The next chat message ``client`` receives."""
    message = client.recv(timeout=timeout(10))
    assert isinstance(message, str), f"a chat message is text, not {message!r}"
    return json.loads(message)  # type: ignore[no-any-return]


def check_chat(port: int) -> None:
    """Two chatters in a room both get each message; a chatter in another room does not.

    No message is sent before its sender's own echo proved it joined, and each
    "does not" is shown by order, not by waiting: a room's broadcast puts the
    message in every member's queue before the sender's next message is read,
    so a message that leaked into another room would arrive there before what
    that room says next.
    """
    with contextlib.ExitStack() as stack:
        ann = stack.enter_context(chat_client(port, "lobby"))
        say(ann, "ann", "ann joined")
        assert heard(ann) == {"name": "ann", "text": "ann joined"}
        ada = stack.enter_context(chat_client(port, "lobby"))
        say(ada, "ada", "ada joined")
        for client in (ada, ann):
            assert heard(client) == {"name": "ada", "text": "ada joined"}
        bob = stack.enter_context(chat_client(port, "kitchen"))
        say(bob, "bob", "bob joined")
        assert heard(bob) == {"name": "bob", "text": "bob joined"}

        # Markup is just text to the server; the page shows it with textContent.
        lobby = ["<b>hello</b> & welcome", "  second  "]
        for text in lobby:
            say(ann, "  ann ", text)
        for client in (ann, ada):
            assert [heard(client) for _ in lobby] == [
                {"name": "ann", "text": "<b>hello</b> & welcome"},
                {"name": "ann", "text": "second"},  # trimmed
            ]

        kitchen = ["anyone here?", "hello?"]
        for text in kitchen:
            say(bob, "bob", text)
        assert [heard(bob) for _ in kitchen] == [{"name": "bob", "text": t} for t in kitchen], (
            "a message said in the lobby reached the kitchen"
        )

        say(ada, "ada", "the lobby again")
        for client in (ann, ada):
            assert heard(client) == {"name": "ada", "text": "the lobby again"}, (
                "a message said in the kitchen reached the lobby"
            )
    for client in (ann, ada, bob):
        assert client.close_code == 1000


#: What a client may send that is not a chat message, and the close code it gets.
JUNK: list[tuple[str, str | bytes, int]] = [
    ("binary", b"\x00\x01 binary", 1003),
    ("not JSON", "hello", 1007),
    ("not an object", '["ann", "hi"]', 1007),
    ("text not a string", '{"name": "ann", "text": 5}', 1007),
    ("no name", '{"text": "hi"}', 1007),
    ("empty name", '{"name": " ", "text": "hi"}', 1007),
    ("name too long", json.dumps({"name": "n" * 41, "text": "hi"}), 1007),
    ("text too long", json.dumps({"name": "ann", "text": "t" * 2001}), 1007),
    ("nested too deep", "[" * 5000, 1007),
    ("over 16 KiB", json.dumps({"name": "ann", "text": "t" * 20000}), 1009),
]


def check_junk(port: int) -> None:
    """Junk closes the connection with the code RFC 6455 §7.4.1 has for it; the room lives on."""
    for what, junk, code in JUNK:
        with chat_client(port, "lobby") as client:
            client.send(junk)
            with pytest.raises(ConnectionClosed) as closed:
                client.recv(timeout=timeout(10))
            assert closed.value.rcvd is not None, f"{what}: no Close frame from the server"
            assert closed.value.rcvd.code == code, f"{what}: closed with {closed.value.rcvd}"
    # A room name the server does not accept ("no room!"): 1008, policy violation.
    with chat_client(port, "no%20room%21") as client, pytest.raises(ConnectionClosed) as closed:
        client.recv(timeout=timeout(10))
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    # And the server still chats.
    with chat_client(port, "lobby") as client:
        say(client, "ann", "still here")
        assert heard(client) == {"name": "ann", "text": "still here"}
