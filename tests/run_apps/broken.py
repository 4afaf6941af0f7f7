"""A module with a bug: importing it raises (the command line shows the traceback)."""

from __future__ import annotations


def _configure() -> dict[str, int]:
    settings = {"workers": 1}
    return {"threads": settings["threads"]}  # the bug: a KeyError


CONFIG = _configure()


def app(environ: object, start_response: object) -> list[bytes]:
    return [b""]
