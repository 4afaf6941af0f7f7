"""The package type-checks under ``mypy --strict`` and is ruff-clean."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*command: str) -> None:
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict() -> None:
    pytest.importorskip("mypy", reason="mypy is not installed (pip install -e '.[test]')")
    run(sys.executable, "-m", "mypy", "--strict")


def test_users_annotated_code_type_checks() -> None:
    """WSGI apps annotated as PEP 3333 and typeshed say (a ``dict`` environ) are accepted."""
    pytest.importorskip("mypy", reason="mypy is not installed (pip install -e '.[test]')")
    run(sys.executable, "-m", "mypy", "--strict", "tests/typing/user_code.py")


@pytest.mark.parametrize("check", [("check",), ("format", "--check")])
def test_ruff(check: tuple[str, ...]) -> None:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    run(ruff, *check, "wsgiws", "tests", "examples", "bench")
