"""A stateless HPACK encoder: static-table references and literals never indexed.

Why not the ``hpack`` library's encoder: its dynamic table saves a few dozen
bytes per header block on the wire, but costs a tuple object, a table search
and an insertion per header, per call - a tenth of the proxy's CPU. Encoding
without the dynamic table (RFC 7541 §6.1, §6.2.2) makes a header's bytes a
pure function of the header, so each distinct pair is encoded once and then
looked up. Peers still decode it with any compliant decoder. Strings are
Latin-1 both here and in :mod:`hpack_in`, so header octets pass through unchanged.
"""

from __future__ import annotations

from hpack.table import HeaderTable

__all__ = ["HeaderEncoder", "encode_int"]

# Values unique per call are never cached (they would only fill the cache).
UNIQUE = frozenset({"x-request-id", "traceparent", "tracestate", "grpc-timeout", "grpc-message"})
_MAX_CACHE = 8192

_STATIC_PAIR: dict[tuple[str, str], int] = {}
_STATIC_NAME: dict[str, int] = {}
for _i, (_name, _value) in enumerate(HeaderTable.STATIC_TABLE, 1):
    _STATIC_PAIR.setdefault((_name.decode("latin-1"), _value.decode("latin-1")), _i)
    _STATIC_NAME.setdefault(_name.decode("latin-1"), _i)


def encode_int(value: int, prefix_bits: int, flags: int) -> bytes:
    """An HPACK integer (RFC 7541 §5.1) in a byte whose high bits are ``flags``."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((flags | value,))
    out = bytearray((flags | limit,))
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(raw: bytes) -> bytes:
    return encode_int(len(raw), 7, 0x00) + raw  # H=0: no Huffman coding


def _name_part(name: str) -> bytes:
    """The name half of a literal never indexed (§6.2.3): a static index or the literal name."""
    index = _STATIC_NAME.get(name)
    if index is not None:
        return encode_int(index, 4, 0x10)
    return b"\x10" + _string(name.encode("latin-1"))


def encode_field(name: str, value: str) -> bytes:
    index = _STATIC_PAIR.get((name, value))
    if index is not None:
        return encode_int(index, 7, 0x80)  # indexed field (§6.1)
    return _name_part(name) + _string(value.encode("latin-1"))


class HeaderEncoder:
    """Encodes header lists; one per connection (for the table-size acknowledgement)."""

    __slots__ = ("_size_update",)

    _cache: dict[tuple[str, str], bytes] = {}  # shared: the encoding does not depend on state
    _names: dict[str, bytes] = {}

    def __init__(self) -> None:
        self._size_update: int | None = None

    def table_size(self, size: int) -> None:
        """The peer's SETTINGS_HEADER_TABLE_SIZE: acknowledged (our table stays empty)."""
        self._size_update = size

    def encode(self, headers: list[tuple[str, str]]) -> bytes:
        cache = self._cache
        parts: list[bytes] = []
        if self._size_update is not None:
            parts.append(encode_int(min(self._size_update, 4096), 5, 0x20))
            self._size_update = None
        for pair in headers:
            raw = cache.get(pair)
            if raw is None:
                name = pair[0]
                if name in UNIQUE:
                    prefix = self._names.get(name)
                    if prefix is None:
                        prefix = self._names[name] = _name_part(name)
                    parts.append(prefix + _string(pair[1].encode("latin-1")))
                    continue
                raw = encode_field(name, pair[1])
                if len(cache) >= _MAX_CACHE:
                    cache.clear()
                cache[pair] = raw
            parts.append(raw)
        return b"".join(parts)
