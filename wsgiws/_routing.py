"""Paths with parameters, for the middleware's handlers: ``/chat/{room}``.

A route's pattern is a path in which ``{name}`` stands for one path segment
(no ``/``), ``{name:int}`` for a decimal integer (given to the handler as an
``int``) and ``{name:path}`` for the rest of the path, slashes included. The
values are matched against ``PATH_INFO``, which the server has already
percent-decoded, and handed to the handler as keyword arguments.

Written by hand because the framework-free middleware must not depend on a
framework's router; the syntax is the one Starlette, Pyramid and Werkzeug's
URI templates users already know, reduced to the three converters above.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, TypeVar

__all__ = ["Route", "Router"]

T = TypeVar("T")

_PARAMETER = re.compile(r"\{([^{}]*)\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: Converter name: (regular expression, conversion of the matched text).
_CONVERTERS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "str": (r"[^/]+", str),
    "int": (r"[0-9]+", int),
    "path": (r".+", str),
}


@dataclass(frozen=True)
class Route(Generic[T]):
    """One pattern and what it leads to."""

    pattern: str
    target: T
    _regex: re.Pattern[str] | None = field(default=None, repr=False, compare=False)
    _convert: tuple[tuple[str, Callable[[str], Any]], ...] = field(
        default=(), repr=False, compare=False
    )

    @classmethod
    def compile(cls, pattern: str, target: T) -> Route[T]:
        """Parse ``pattern``; a malformed one raises ValueError saying what is wrong."""
        if not pattern.startswith("/"):
            raise ValueError(f"path {pattern!r} must start with '/'")
        regex, convert, names, last = [], [], set(), 0
        for match in _PARAMETER.finditer(pattern):
            regex.append(re.escape(pattern[last : match.start()]))
            name, _, kind = match.group(1).partition(":")
            kind = kind or "str"
            if not _NAME.match(name):
                raise ValueError(
                    f"path {pattern!r}: {{{match.group(1)}}} must be {{name}} or "
                    "{name:converter} with a Python identifier as the name"
                )
            if kind not in _CONVERTERS:
                raise ValueError(
                    f"path {pattern!r}: unknown converter {kind!r} "
                    f"(one of {', '.join(_CONVERTERS)})"
                )
            if name in names:
                raise ValueError(f"path {pattern!r}: parameter {name!r} appears twice")
            names.add(name)
            expression, conversion = _CONVERTERS[kind]
            regex.append(f"(?P<{name}>{expression})")
            convert.append((name, conversion))
            last = match.end()
        rest = pattern[last:]
        if "{" in rest or "}" in rest or any("{" in r or "}" in r for r in regex[::2]):
            raise ValueError(f"path {pattern!r} has an unbalanced brace")
        if not convert:
            return cls(pattern, target)
        regex.append(re.escape(rest))
        return cls(pattern, target, re.compile("".join(regex)), tuple(convert))

    def match(self, path: str) -> dict[str, Any] | None:
        """The parameters when ``path`` matches, else None."""
        if self._regex is None:
            return {} if path == self.pattern else None
        found = self._regex.fullmatch(path)
        if found is None:
            return None
        return {name: conversion(found.group(name)) for name, conversion in self._convert}


class Router(Generic[T]):
    """Routes tried in a fixed order: exact paths first, then patterns as given."""

    def __init__(self, routes: Iterable[tuple[str, T]]) -> None:
        self.routes: list[Route[T]] = []
        self._exact: dict[str, Route[T]] = {}
        patterns: list[Route[T]] = []
        for pattern, target in routes:
            route = Route.compile(pattern, target)
            if route._regex is None:
                self._exact[pattern] = route
            else:
                patterns.append(route)
        self.routes = [*self._exact.values(), *patterns]
        self._patterns = patterns

    def match(self, path: str) -> tuple[T, dict[str, Any]] | None:
        """The target and parameters of the first route that matches ``path``."""
        route = self._exact.get(path)
        if route is not None:
            return route.target, {}
        for route in self._patterns:
            params = route.match(path)
            if params is not None:
                return route.target, params
        return None
