"""Protocol options: their validation, the per-path :class:`Endpoint`, the accept hook's types.

Shared by the middleware and the framework integrations, which all hand an
:class:`Options` to :func:`wsgiws._upgrade.serve`.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional

import webob

from ._deflate import Deflate
from ._handshake import OriginRule, SubprotocolSelector

__all__ = [
    "DEFAULT_COMPRESSION",
    "INHERIT",
    "OPTION_NAMES",
    "Accept",
    "AcceptHook",
    "Endpoint",
    "Handler",
    "Options",
    "check_option_names",
]

#: A WebSocket handler: called with the connection (and the parameters of its
#: route's path pattern as keyword arguments), in the server's thread or
#: greenlet for that request; the connection closes when it returns.
Handler = Callable[..., Any]


@dataclass(frozen=True)
class Accept:
    """What an accept hook may return to shape the 101 response.

    ``subprotocol`` replaces the one chosen by ``subprotocols`` (it must be one
    the client offered); None keeps that choice. ``headers`` are added to the
    101 response (say, ``Set-Cookie``).
    """

    subprotocol: str | None = None
    headers: Mapping[str, str] | Iterable[tuple[str, str]] = ()


#: An accept hook: sees the upgrade request after it was validated and before
#: the upgrade. It returns None to accept, an :class:`Accept` to choose the
#: subprotocol or add headers, or raises :class:`~wsgiws.Reject` to answer with
#: an HTTP status and body instead (authentication, rate limits).
AcceptHook = Callable[[webob.Request], Optional[Accept]]


class _Inherit(enum.Enum):
    INHERIT = "inherit"


#: An :class:`Endpoint` option left as given to the middleware.
INHERIT = _Inherit.INHERIT

#: Our default: permessage-deflate on, with windows and a memory level that keep
#: a connection's zlib state small (see docs/topics/compression.rst).
DEFAULT_COMPRESSION = Deflate()


@dataclass(frozen=True)
class Options:
    """The protocol options of one path, validated."""

    subprotocols: Sequence[str] | SubprotocolSelector = ()
    compression: Deflate | None = DEFAULT_COMPRESSION
    max_message_size: int | None = 1024 * 1024
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    close_timeout: float = 5.0
    send_timeout: float | None = 20.0
    origins: Sequence[OriginRule] | None = None
    accept: AcceptHook | None = None

    def __post_init__(self) -> None:
        subprotocols = self.subprotocols
        if isinstance(subprotocols, str) or not (
            callable(subprotocols) or isinstance(subprotocols, Sequence)
        ):
            raise TypeError(
                "subprotocols must be a list of names or a callable that chooses "
                f"from the client's offer, not {subprotocols!r}"
            )
        if not callable(subprotocols):
            object.__setattr__(self, "subprotocols", tuple(subprotocols))
        compression: Any = self.compression
        if compression is True:
            object.__setattr__(self, "compression", DEFAULT_COMPRESSION)
        elif compression is False:
            object.__setattr__(self, "compression", None)
        elif compression is not None and not isinstance(compression, Deflate):
            raise TypeError(
                f"compression must be a wsgiws.Deflate, True, False or None, not {compression!r}"
            )
        if self.max_message_size is not None and self.max_message_size < 1:
            raise ValueError(
                f"max_message_size must be positive or None, not {self.max_message_size}"
            )
        for name in ("ping_interval", "ping_timeout", "send_timeout"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(
                    f"{name} must be a positive number of seconds or None, not {value!r}"
                )
        if not self.close_timeout >= 0:
            raise ValueError(f"close_timeout must be >= 0, not {self.close_timeout!r}")
        origins = self.origins
        if origins is not None:
            if isinstance(origins, (str, re.Pattern)) or not isinstance(origins, Iterable):
                raise TypeError(
                    "origins must be a list of allowed origins (or None to allow any), "
                    f"not {origins!r}"
                )
            origins = tuple(origins)
            for rule in origins:
                if rule is not None and not isinstance(rule, (str, re.Pattern)):
                    raise TypeError(
                        f"an allowed origin must be a str, a re.Pattern or None, not {rule!r}"
                    )
            object.__setattr__(self, "origins", origins)
        if self.accept is not None and not callable(self.accept):
            raise TypeError(f"accept must be a callable, not {self.accept!r}")


class Endpoint:
    """A handler with protocol options of its own, for one path of the middleware.

    Every option is one of :class:`WebSocketMiddleware`'s; one left out is taken
    from the middleware::

        WebSocketMiddleware(app, {
            "/chat": chat,
            "/upload": Endpoint(upload, max_message_size=64 * 2**20, compression=None),
        })
    """

    def __init__(
        self,
        handler: Handler,
        *,
        subprotocols: Sequence[str] | SubprotocolSelector | _Inherit = INHERIT,
        compression: Deflate | bool | _Inherit | None = INHERIT,
        max_message_size: int | _Inherit | None = INHERIT,
        ping_interval: float | _Inherit | None = INHERIT,
        ping_timeout: float | _Inherit | None = INHERIT,
        close_timeout: float | _Inherit = INHERIT,
        send_timeout: float | _Inherit | None = INHERIT,
        origins: Sequence[OriginRule] | _Inherit | None = INHERIT,
        accept: AcceptHook | _Inherit | None = INHERIT,
    ) -> None:
        if not callable(handler):
            raise TypeError(f"the handler {handler!r} is not callable")
        self.handler = handler
        given = {
            "subprotocols": subprotocols,
            "compression": compression,
            "max_message_size": max_message_size,
            "ping_interval": ping_interval,
            "ping_timeout": ping_timeout,
            "close_timeout": close_timeout,
            "send_timeout": send_timeout,
            "origins": origins,
            "accept": accept,
        }
        #: The options set here, the others being inherited.
        self.options: dict[str, Any] = {k: v for k, v in given.items() if v is not INHERIT}
        # Fail now, not at the first request, on a bad value.
        Options(**self.options)

    def __repr__(self) -> str:
        return f"Endpoint({self.handler!r}, {self.options!r})"


#: The names of the protocol options (the keyword arguments of
#: :class:`~wsgiws.WebSocketMiddleware` and :class:`Endpoint`).
OPTION_NAMES = frozenset(f.name for f in dataclasses.fields(Options))


def check_option_names(options: Iterable[str], where: str = "") -> None:
    """Raise TypeError naming any of ``options`` that is not a protocol option."""
    unknown = sorted(set(options) - OPTION_NAMES)
    if unknown:
        raise TypeError(f"{where}unknown WebSocket option(s): {', '.join(unknown)}")
