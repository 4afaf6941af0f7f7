"""Build step for the optional C extension only; the metadata is in setup.cfg.

``wsgiws._speedups`` (wsgiws/_speedups.c) speeds up payload unmasking. It is
``optional=True``: when it cannot be built (no compiler, no Python headers)
setuptools warns and installs the package without it, and wsgiws._mask falls
back to its pure-Python implementation, which gives identical bytes.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("wsgiws._speedups", ["wsgiws/_speedups.c"], optional=True)])
