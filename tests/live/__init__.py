"""The live-server tier: real WSGI servers in subprocesses, real clients on real sockets."""
