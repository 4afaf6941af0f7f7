"""A program that calls ``wsgiws.run()``, as users' programs do.

    python tests/run_apps/script.py SERVER [PATCH]

SERVER is run()'s ``server`` argument; PATCH, "gevent" or "eventlet", patches
the process first, as a program that wants a green server does. The port is 0
(a free one; the launcher's line names it). After run() returns, the program
prints "script: run() returned in <pid>": a test counts that line, which a
gunicorn worker (a fork of this process) must never print.
"""

import os
import sys

if len(sys.argv) > 2 and sys.argv[2] == "gevent":
    from gevent import monkey

    monkey.patch_all()
elif len(sys.argv) > 2 and sys.argv[2] == "eventlet":
    import eventlet

    eventlet.monkey_patch()

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import wsgiws
from tests.run_apps.echo import app

wsgiws.run(app, port=0, server=sys.argv[1])
print(f"script: run() returned in {os.getpid()}", flush=True)
