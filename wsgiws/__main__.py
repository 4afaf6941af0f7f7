"""``python -m wsgiws MODULE:APP``: serve a WSGI application on the best server installed.

The order of events is the point of a command line: the server is chosen, and
for gevent or eventlet the process monkey-patched, *before* the application's
module is imported, so that everything it imports gets the green ``socket``
and ``threading``. (This package is imported first, unavoidably; it starts no
thread and keeps no socket or lock made at import time.) Then the port is
listened on, the module imported, and the app served by :func:`wsgiws._run.serve`.

Errors that are the command line's (a module or file that is not there, an
attribute the module lacks, an unknown or uninstalled server, a port that is
taken) print one line and exit with status 2. An exception raised while the
application's module runs is a bug in that module: its traceback is printed
(from the module's own frames down), then the line, and the status is 2 too.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys
import traceback
from pathlib import Path
from typing import Any, NoReturn

from ._run import CHOICES, choose, listen, serve

USAGE_ERROR = 2
PROG = "python -m wsgiws"

DESCRIPTION = """\
Serve a WSGI application (one wrapped with wsgiws.WebSocketMiddleware, or a
Flask, Bottle or Pyramid app using the wsgiws integration) until Ctrl-C or
SIGTERM.
"""

EPILOG = """\
servers:
  auto      the first of gevent, eventlet, gunicorn, werkzeug that is installed
            (the default); one line on stderr says which, and why
  gevent    gevent.pywsgi, monkey-patched before the app is imported
  eventlet  eventlet.wsgi, monkey-patched before the app is imported
  gunicorn  gunicorn, one gthread worker with 256 threads (one per open WebSocket)
  werkzeug  the Werkzeug development server, a thread per connection

examples:
  python -m wsgiws myapp:app
  python -m wsgiws path/to/chat.py --port 8000 --server gunicorn
  python -m wsgiws mypackage.web:application --host 0.0.0.0
"""


class _Error(Exception):
    """A mistake on the command line: one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, not argparse's usage block: the usage is one --help away.
        _fail(f"{message} (see {PROG} --help)")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number (0 to 65535): {port}")
    return port


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "app",
        metavar="MODULE:APP",
        help=(
            "the module (a dotted name, or the path of a .py file) and the name of the WSGI "
            "application in it; without :APP, 'application', then 'app'"
        ),
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="the address to listen on (default: 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=_port, default=5000, help="the port; 0 takes a free one (default: 5000)"
    )
    parser.add_argument(
        "--server", choices=CHOICES, default="auto", help="the server (default: auto, see below)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        choice = choose(args.server, patch=True)  # before the app is imported
        listener = listen(args.host, args.port)
        app = load(args.app)
    except (ImportError, ValueError, OSError, _Error) as exc:
        _fail(str(exc))
    serve(app, listener, choice, args.host)
    return 0


def load(spec: str) -> Any:
    """The WSGI application that ``MODULE:APP`` names. Raises :class:`_Error`."""
    module_part, name = _split(spec)
    module_name = _importable_name(module_part)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name + ".").startswith(exc.name + "."):
            raise _Error(
                f"no module named {exc.name!r} (run from the directory that holds it, or give "
                "the path of its .py file)"
            ) from None
        _user_error(exc, module_part)
    except Exception as exc:
        _user_error(exc, module_part)
    # 'application' first: gunicorn's default name, and the usual one for the
    # wrapped app in a module whose 'app' is the plain app it wraps.
    names = [name] if name else ["application", "app"]
    for candidate in names:
        app = module
        try:
            for part in candidate.split("."):
                app = getattr(app, part)
        except AttributeError:
            continue
        _check_app(app, f"{module_name}:{candidate}")
        return app
    if name:
        raise _Error(f"module {module_name!r} has no attribute {name!r}")
    raise _Error(
        f"module {module_name!r} has neither 'application' nor 'app': name the WSGI "
        f"application as {module_part}:NAME"
    )


def _split(spec: str) -> tuple[str, str]:
    """``MODULE:APP`` as (MODULE, APP); APP is "" when not given.

    Only a last part that is a (dotted) Python name is APP, so that a Windows
    path ("C:\\\\apps\\\\chat.py") stays whole.
    """
    module, colon, name = spec.rpartition(":")
    if colon and module and all(part.isidentifier() for part in name.split(".")):
        return module, name
    return spec, ""


def _importable_name(module: str) -> str:
    """The dotted name to import ``module`` by, a dotted name or the path of a .py file.

    For a path, the file's directory, or the directory above the packages it
    is in (directories with an ``__init__.py``), goes first on ``sys.path``, and
    the name is the dotted path from there, as ``python path/to/file.py`` would
    see it (plus its packages, so that relative imports work).
    """
    if not (module.endswith(".py") or os.sep in module or "/" in module):
        # python -m puts the working directory first on sys.path; a caller of
        # main() may not have.
        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.insert(0, os.getcwd())
        return module
    path = Path(module)
    if not path.is_file():
        raise _Error(f"no such file: {module}")
    path = path.resolve()
    parts = [] if path.stem == "__init__" else [path.stem]
    directory = path.parent
    while (directory / "__init__.py").is_file():
        parts.insert(0, directory.name)
        directory = directory.parent
    if not parts:
        raise _Error(f"cannot import {module}: name the package's directory or a module in it")
    sys.path.insert(0, str(directory))
    return ".".join(parts)


def _check_app(app: Any, where: str) -> None:
    if not callable(app):
        raise _Error(f"{where} is a {type(app).__name__}, not a WSGI application (a callable)")
    call = app if inspect.isfunction(app) or inspect.ismethod(app) else type(app).__call__
    if inspect.iscoroutinefunction(call):
        raise _Error(f"{where} is an ASGI application (async); wsgiws serves WSGI applications")


def _user_error(exc: BaseException, module: str) -> NoReturn:
    """The app's module raised while it was imported: its bug, so show where."""
    tb = exc.__traceback__
    # Drop this file's and importlib's frames: the traceback starts in their code.
    while tb is not None and _is_ours(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb)
    _fail(f"importing {module} raised {type(exc).__name__} (traceback above)")


def _is_ours(filename: str) -> bool:
    return (
        filename == __file__
        or filename == importlib.__file__
        or filename.startswith("<frozen importlib")
    )


def _fail(message: str) -> NoReturn:
    print(f"wsgiws: error: {message}", file=sys.stderr, flush=True)
    sys.exit(USAGE_ERROR)


if __name__ == "__main__":
    sys.exit(main())
