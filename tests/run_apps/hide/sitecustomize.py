"""Hide installed packages from this Python process, as if they were not installed.

On ``PYTHONPATH`` (before site-packages), so Python imports it at start-up.
``WSGIWS_TEST_HIDE`` names the top-level packages, separated by commas: a
finder first on ``sys.meta_path`` answers every import of them (and
``importlib.util.find_spec``) with the ModuleNotFoundError of a package that is
not there.
"""

import os
import sys

HIDDEN = frozenset(filter(None, os.environ.get("WSGIWS_TEST_HIDE", "").split(",")))


class _Hide:
    @staticmethod
    def find_spec(name, path=None, target=None):
        top = name.partition(".")[0]
        if top in HIDDEN:
            raise ModuleNotFoundError(f"No module named {top!r}", name=top)
        return None


if HIDDEN:
    sys.meta_path.insert(0, _Hide())
