"""The documentation builds with Sphinx, warnings as errors, as a reader would build it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import timeout

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_docs_build_without_warnings(tmp_path: Path) -> None:
    pytest.importorskip("sphinx", reason="Sphinx comes with the docs extra: pip install -e .[docs]")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-b",
            "html",
            str(DOCS),
            str(tmp_path / "html"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout(120),
    )
    assert result.returncode == 0, f"sphinx-build failed:\n{result.stdout}"
    assert (tmp_path / "html" / "index.html").is_file()
