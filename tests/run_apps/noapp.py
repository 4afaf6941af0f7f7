"""A module without a WSGI application named ``app`` or ``application``."""

from __future__ import annotations

wsgi = None
