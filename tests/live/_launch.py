"""Start one WSGI server on an inherited listening socket.

Run by the live-test harness as::

    python -m tests.live._launch SERVER_ID MODULE:APP FD

``FD`` is a listening TCP socket the parent bound (so there is no port race).
gunicorn is not started here: the harness runs ``python -m gunicorn`` with
``--bind fd://FD`` directly. Exit status 3 means the server cannot be imported
here; the first line of stderr then says why, and the tests skip.

The green servers are monkey-patched first thing, before anything else is
imported, as their users do; the ``-unpatched`` ones are not patched at all
(their listening socket is the green library's own socket class instead).

With ``WSGIWS_TEST_TLS`` set (``CERTFILE:KEYFILE``, or ``adhoc`` for Werkzeug's
own certificate) the server terminates TLS itself, configured as its users do:
see :func:`_tls`.
"""

import sys

CANNOT_IMPORT = 3


def _cannot_import(server_id, exc):
    sys.stderr.write(f"SKIP: {server_id} cannot be imported: {exc!r}\n")
    sys.stderr.flush()
    sys.exit(CANNOT_IMPORT)


def _patch(server_id):
    try:
        if server_id == "gevent-pywsgi":
            from gevent import monkey

            monkey.patch_all()
        elif server_id == "eventlet-wsgi":
            import eventlet

            eventlet.monkey_patch()
    except ImportError as exc:
        _cannot_import(server_id, exc)


def _load(spec):
    import importlib

    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name or "app")


def _listener(fd):
    import socket

    return socket.socket(fileno=fd)


def _tls():
    """``None`` (plain HTTP), ``"adhoc"``, or ``(certfile, keyfile)`` from ``WSGIWS_TEST_TLS``."""
    import os

    value = os.environ.get("WSGIWS_TEST_TLS", "")
    if value in ("", "adhoc"):
        return value or None
    certfile, _, keyfile = value.partition(":")
    return certfile, keyfile


def _tls_files(server_id):
    """The certificate and key files, for a server that has no adhoc mode of its own."""
    tls = _tls()
    if tls == "adhoc":
        sys.exit(f"{server_id} has no adhoc certificate (only werkzeug has)")
    return tls


def _eventlet_tls(server_id, listener):
    """eventlet's documented way: ``eventlet.wrap_ssl(listener, ..., server_side=True)``."""
    tls = _tls_files(server_id)
    if tls is None:
        return listener
    import eventlet

    certfile, keyfile = tls
    return eventlet.wrap_ssl(listener, certfile=certfile, keyfile=keyfile, server_side=True)


def _gevent_tls(server_id):
    """``WSGIServer(listener, app, keyfile=..., certfile=...)``, as gevent documents."""
    tls = _tls_files(server_id)
    if tls is None:
        return {}
    certfile, keyfile = tls
    return {"certfile": certfile, "keyfile": keyfile}


def serve(server_id, spec, fd):
    _patch(server_id)
    if server_id == "werkzeug":
        try:
            from werkzeug.serving import make_server
        except ImportError as exc:
            _cannot_import(server_id, exc)
        # ssl_context: None, "adhoc", or (certfile, keyfile), as run_simple takes it.
        server = make_server("127.0.0.1", 0, _load(spec), threaded=True, fd=fd, ssl_context=_tls())
        server.serve_forever()
    elif server_id == "eventlet-wsgi":
        import eventlet.wsgi

        eventlet.wsgi.server(_eventlet_tls(server_id, _listener(fd)), _load(spec))
    elif server_id == "eventlet-wsgi-unpatched":
        try:
            import eventlet.green.socket
            import eventlet.wsgi
        except ImportError as exc:
            _cannot_import(server_id, exc)
        # Unpatched, socket.socket is the OS's: the listener must be eventlet's
        # green socket, or accept() would block the hub (eventlet.listen() does this).
        listener = eventlet.green.socket.socket(fileno=fd)
        eventlet.wsgi.server(_eventlet_tls(server_id, listener), _load(spec))
    elif server_id == "gevent-pywsgi":
        from gevent.pywsgi import WSGIServer

        WSGIServer(_listener(fd), _load(spec), **_gevent_tls(server_id)).serve_forever()
    elif server_id == "gevent-pywsgi-unpatched":
        try:
            import gevent.socket
            from gevent.pywsgi import WSGIServer
        except ImportError as exc:
            _cannot_import(server_id, exc)
        # As gevent documents: the listener is a gevent socket. (Unpatched, a
        # stdlib one stays blocking, and the server's accept loop blocks the hub.)
        listener = gevent.socket.socket(fileno=fd)
        WSGIServer(listener, _load(spec), **_gevent_tls(server_id)).serve_forever()
    elif server_id == "waitress":
        try:
            import waitress
        except ImportError as exc:
            _cannot_import(server_id, exc)
        waitress.serve(_load(spec), sockets=[_listener(fd)], threads=8)
    elif server_id == "wsgiref":
        _serve_wsgiref(spec, fd)
    else:
        sys.exit(f"unknown server id {server_id!r}")


def _serve_wsgiref(spec, fd):
    import socket
    import socketserver
    from wsgiref.simple_server import WSGIServer

    class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
        daemon_threads = True

    server = ThreadingWSGIServer(("127.0.0.1", 0), _Handler(), bind_and_activate=False)
    server.socket.close()
    server.socket = _listener(fd)
    host, port = server.server_address = server.socket.getsockname()[:2]
    server.server_name = socket.getfqdn(host)
    server.server_port = port
    server.setup_environ()
    server.set_app(_load(spec))
    server.serve_forever()


def _Handler():
    from wsgiref.simple_server import WSGIRequestHandler

    return WSGIRequestHandler


if __name__ == "__main__":
    server_id, spec, fd = sys.argv[1], sys.argv[2], int(sys.argv[3])
    serve(server_id, spec, fd)
