"""Sphinx configuration: the built-in theme and extensions only; the build runs offline."""

from __future__ import annotations

import sys
from pathlib import Path

# Document the source tree next to this directory, whatever else is installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import wsgiws

project = "wsgiws"
author = "the wsgiws contributors"
copyright = "the wsgiws contributors"
release = wsgiws.__version__
version = release

extensions = ["sphinx.ext.autodoc"]
autodoc_member_order = "bysource"
# Name the WSGI application type in signatures rather than spell it out.
autodoc_type_aliases = {"WSGIApp": "WSGIApp"}

exclude_patterns = ["_build"]
html_theme = "alabaster"
