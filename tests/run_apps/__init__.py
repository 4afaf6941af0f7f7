"""Apps and a script that tests/test_run.py serves with ``python -m wsgiws`` and ``run()``."""
