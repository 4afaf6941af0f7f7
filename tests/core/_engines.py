"""The two framing engines behind :class:`wsgiws._protocol.Protocol`, for parametrized tests.

``"codec"`` is wsgiws's own frame codec (:mod:`wsgiws._frames`), used when no
extension was negotiated; ``"wsproto"`` is wsproto, used when permessage-deflate
was. The wsproto engine is chosen here by passing a permessage-deflate extension
that was never accepted in a handshake: wsproto then runs with no extension
active, so both engines see exactly the same (uncompressed) protocol and every
rule test applies to both. Compressed traffic is tested in ``test_deflate.py``.
"""

from __future__ import annotations

from wsproto.extensions import Extension

from wsgiws._deflate import Deflate, _ServerDeflate
from wsgiws._protocol import Protocol

ENGINES = ("codec", "wsproto")


def engine_extensions(engine: str, max_message_size: int | None = None) -> list[Extension]:
    """The ``extensions`` argument that selects ``engine``."""
    if engine == "codec":
        return []
    assert engine == "wsproto", engine
    extension = _ServerDeflate(Deflate(), max_message_size=max_message_size)
    assert not extension.enabled()
    return [extension]


def make_protocol(engine: str, max_message_size: int | None = None) -> Protocol:
    """A Protocol on ``engine``."""
    protocol = Protocol(
        max_message_size=max_message_size,
        extensions=engine_extensions(engine, max_message_size),
    )
    assert type(protocol._engine).__name__ == (
        "FrameCodec" if engine == "codec" else "_WsprotoEngine"
    )
    return protocol
