"""Assertions in the shared helpers report their operands, as in test modules."""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite("tests.examples._run", "tests.browser._chromium")
