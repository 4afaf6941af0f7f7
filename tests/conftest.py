"""Settings shared by every test tier.

* ``WSGIWS_TEST_TIMEOUT_SCALE`` (a float, default 1) multiplies every timeout
  the tests wait for, for slow machines. Tests take timeouts from
  :func:`timeout`, never from literals.
* ``WSGIWS_REQUIRE_ALL=1`` (set by ``.ci/run``) turns every skip into a
  failure: locally a test that needs a missing server or tool skips with its
  reason; in CI nothing may be skipped.
* Hypothesis (the ``test_fuzz_*`` files) runs under the "ci" profile when
  ``WSGIWS_REQUIRE_ALL`` is set: derandomized, so a CI run is repeatable, and
  printing the reproduction blob of a failure; under "dev" otherwise, with
  random examples and the local example database (``.hypothesis/``, not in
  git). No deadline in either: the CI machine has 2 shared cores. Choose
  another with ``--hypothesis-profile``.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

TIMEOUT_SCALE = float(os.environ.get("WSGIWS_TEST_TIMEOUT_SCALE", "1"))
REQUIRE_ALL = os.environ.get("WSGIWS_REQUIRE_ALL", "") not in ("", "0")


settings.register_profile(
    "ci",
    deadline=None,
    derandomize=True,
    print_blob=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if REQUIRE_ALL else "dev")


def timeout(seconds: float) -> float:
    """A timeout of ``seconds``, scaled for this machine."""
    return seconds * TIMEOUT_SCALE


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_ALL and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped, and WSGIWS_REQUIRE_ALL forbids skips: {reason}"
