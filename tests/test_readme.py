"""README.rst's two commands, as a newcomer runs them on a fresh checkout.

The chat demo command is taken from the README itself and run in a copy of
the repository's tracked files, with a virtual environment of its own
installed from PyPI: what a fresh clone gets. The test command is the one CI
runs (``.ci/run`` ends by calling it), so it is checked to be the same.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import timeout
from tests.examples._run import check_chat, free_port, wait_until_serving

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.rst").read_text()


def literal_lines(section: str) -> list[str]:
    """The lines of the literal blocks (indented after ``::``) under a README heading."""
    text = README.split(f"\n{section}\n", 1)[1]
    text = re.split(r"\n[^\n]+\n[-~=]{3,}\n", text, maxsplit=1)[0]  # up to the next heading
    return [line.strip() for line in text.splitlines() if line.startswith("    ")]


def test_the_test_command_is_the_one_ci_runs() -> None:
    assert literal_lines("Running the tests") == ["./run-tests"]
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == './run-tests "$@"'


@pytest.mark.live
def test_the_chat_demo_command_works_on_a_fresh_checkout(tmp_path: Path) -> None:
    (command,) = [line for line in literal_lines("Trying it") if "examples/chat.py" in line]
    checkout = tmp_path / "checkout"
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, tracked.split("\0")):
        if (ROOT / name).is_file():
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, checkout / name)

    # The installs first (they may take a while), then the demo itself, on a
    # free port rather than 5000.
    *installs, start = command.split(" && ")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    for step in installs:
        result = subprocess.run(
            step,
            shell=True,
            cwd=checkout,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout(600),
        )
        assert result.returncode == 0, f"$ {step}\n{result.stdout}\n{result.stderr}"
    port = free_port()
    output = tmp_path / "output.txt"
    with output.open("wb") as out:
        proc = subprocess.Popen(
            f"{start} --port {port}",
            shell=True,
            cwd=checkout,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        page = wait_until_serving(f"http://127.0.0.1:{port}/", proc)
        assert b"new WebSocket(" in page
        check_chat(port)
        printed = output.read_text()
        assert f"http://127.0.0.1:{port}" in printed, printed
        # Only Werkzeug is installed: the launcher says that it chose it, and why.
        assert "Werkzeug" in printed, printed
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout(20))
    except BaseException:
        print(output.read_text(errors="replace"))
        raise
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout(10))
