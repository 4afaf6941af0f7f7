# Type stub for the optional C extension built from _speedups.c (see _mask.py).
from typing import Union

def apply_mask(data: Union[bytes, bytearray, memoryview], mask: bytes, offset: int = 0) -> bytes: ...
