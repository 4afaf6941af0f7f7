# Type stub for the optional C extension built from _speedups.c (see _mask.py),
# so that mypy knows its signature whether or not it was built.
from typing import Union

_Data = Union[bytes, bytearray, memoryview]

def apply_mask(data: _Data, mask: bytes, offset: int = 0) -> bytes: ...
