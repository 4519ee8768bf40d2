"""An HPACK decoder (RFC 7541) specialised for the proxy's hot path.

Why not the ``hpack`` library's decoder: it builds a tuple subclass per field,
logs per field and converts each string separately, which made header
decoding a fifth of the sidecar's CPU. This one keeps the dynamic table as
``str`` pairs, so an indexed field (what gRPC clients send for nearly every
repeated header) costs one lookup. Strings are decoded as Latin-1, so any
octets pass through unchanged to the stateless encoder (:mod:`hpack_out`),
which encodes them back the same way. Huffman-coded strings are decoded by
the ``hpack`` library.

Field names and values are checked against RFC 9113 §8.2.1 where they enter as
literals (indexed fields were checked when they entered the table), so the
check costs nothing for the repeated headers of a gRPC connection. A bad field
does not stop decoding (the table must stay in step): it sets ``malformed``,
which the connection turns into a stream error. A dynamic table size update
anywhere but at the start of a block, or a list over the size limit (an HPACK
"bomb" of references to one large entry), ends the connection.
"""

from __future__ import annotations

import re
from collections import deque

from hpack.huffman_table import decode_huffman
from hpack.table import HeaderTable

__all__ = ["HPACKDecodeError", "HeaderDecoder", "HeaderListTooLarge"]

_STATIC: tuple[tuple[str, str], ...] = tuple(
    (n.decode("latin-1"), v.decode("latin-1")) for n, v in HeaderTable.STATIC_TABLE
)
_N_STATIC = len(_STATIC)
_ENTRY_OVERHEAD = 32  # RFC 7541 §4.1
# RFC 9113 §8.2.1: a name is lowercase token characters (a pseudo-header: one leading colon);
# a value has no NUL, CR or LF and no leading or trailing space or tab.
_BAD_NAME = re.compile(r"[^!#$%&'*+\-.^_`|~0-9a-z]")
_BAD_VALUE = re.compile(r"[\x00\r\n]|^[ \t]|[ \t]$")


class HPACKDecodeError(ValueError):
    """A header block that cannot be decoded: the connection must end (COMPRESSION_ERROR)."""


class HeaderListTooLarge(HPACKDecodeError):
    """The decoded list exceeds the limit: the connection ends with ENHANCE_YOUR_CALM."""


_GOOD_NAMES: set[str] = set()  # names already found valid (a proxy sees the same few again and again)


def field_problem(name: str, value: str) -> str | None:
    """Why a field may not appear in HTTP/2 (RFC 9113 §8.2.1), or None."""
    if name not in _GOOD_NAMES:
        if not name:
            return "empty header name"
        if _BAD_NAME.search(name, 1 if name[0] == ":" else 0):
            return f"invalid header name {name!r}"
        if len(_GOOD_NAMES) < 4096:
            _GOOD_NAMES.add(name)
    # str.isprintable is False for NUL, CR, LF and TAB: only then (or a leading/trailing space) look closer
    if (
        value
        and (not value.isprintable() or value[0] == " " or value[-1] == " ")
        and _BAD_VALUE.search(value)
    ):
        return f"invalid value for header {name!r}"
    return None


class HeaderDecoder:
    """Decodes header blocks of one connection, keeping its dynamic table."""

    __slots__ = (
        "_max_list",
        "_max_size",
        "_size",
        "_table",
        "_table_limit",
        "_tainted",
        "listed",
        "malformed",
    )

    def __init__(self, table_limit: int = 4096, max_header_list: int = 16 << 20) -> None:
        self._table: deque[tuple[str, str]] = deque()  # newest first
        self._size = 0
        self._max_size = table_limit  # current maximum (size updates may lower it)
        self._table_limit = table_limit  # our SETTINGS_HEADER_TABLE_SIZE
        self._max_list = max_header_list
        self.malformed: str | None = None  # the first bad field of the last block
        self.listed = 0  # the last block's decoded size (RFC 9113 §6.5.2 accounting)
        self._tainted = False  # a bad field entered the table: check fields taken from it

    def decode(self, block: bytes) -> list[tuple[str, str]]:
        self.malformed = None
        out: list[tuple[str, str]] = []
        at = 0
        n = len(block)
        listed = 0
        while at < n:
            first = block[at]
            if first & 0x80:  # indexed field (§6.1)
                if first != 0xFF:
                    index = first & 0x7F
                    at += 1
                else:
                    index, at = _integer(block, at, 7)
                field = self._field(index)
            elif first & 0x40:  # literal with incremental indexing (§6.2.1)
                field, at = self._literal(block, at, 6)
                self._add(field)
            elif first & 0x20:  # dynamic table size update (§6.3)
                if out:
                    raise HPACKDecodeError("dynamic table size update after a header field")
                size, at = _integer(block, at, 5)
                if size > self._table_limit:
                    raise HPACKDecodeError(f"table size update to {size} exceeds {self._table_limit}")
                self._max_size = size
                self._evict(0)
                continue
            else:  # literal without indexing / never indexed (§6.2.2, §6.2.3)
                field, at = self._literal(block, at, 4)
            listed += len(field[0]) + len(field[1]) + _ENTRY_OVERHEAD
            if listed > self._max_list:
                raise HeaderListTooLarge(f"header list larger than {self._max_list} bytes")
            out.append(field)
        self.listed = listed
        return out

    def _field(self, index: int) -> tuple[str, str]:
        if 0 < index <= _N_STATIC:
            return _STATIC[index - 1]
        dynamic = index - _N_STATIC - 1
        if index == 0 or dynamic >= len(self._table):
            raise HPACKDecodeError(f"header index {index} out of range")
        field = self._table[dynamic]
        if self._tainted and self.malformed is None:
            self.malformed = field_problem(*field)
        return field

    def _literal(self, block: bytes, at: int, prefix: int) -> tuple[tuple[str, str], int]:
        index, at = _integer(block, at, prefix)
        if index:
            name = self._field(index)[0]
        else:
            name, at = _string(block, at)
        value, at = _string(block, at)
        # the common case inline: a name seen before, a printable value without edge spaces
        # (str.strip returns the very same object when there is nothing to strip)
        good = name in _GOOD_NAMES and value.isprintable() and value.strip(" ") is value
        if not good and self.malformed is None:
            self.malformed = field_problem(name, value)
        return (name, value), at

    def _add(self, field: tuple[str, str]) -> None:
        if self.malformed is not None:
            self._tainted = True
        size = len(field[0]) + len(field[1]) + _ENTRY_OVERHEAD
        if size > self._max_size:  # an entry larger than the table empties it (§4.4)
            self._table.clear()
            self._size = 0
            return
        self._evict(size)
        self._table.appendleft(field)
        self._size += size

    def _evict(self, room: int) -> None:
        table = self._table
        while table and self._size + room > self._max_size:
            name, value = table.pop()
            self._size -= len(name) + len(value) + _ENTRY_OVERHEAD


def _integer(block: bytes, at: int, prefix: int) -> tuple[int, int]:
    """An HPACK integer (§5.1) starting at ``at``; returns (value, next offset)."""
    limit = (1 << prefix) - 1
    value = block[at] & limit
    at += 1
    if value < limit:
        return value, at
    shift = 0
    n = len(block)
    while True:
        if at >= n:
            raise HPACKDecodeError("truncated integer")
        byte = block[at]
        at += 1
        value += (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7
        if shift > 28:
            raise HPACKDecodeError("integer too large")


def _string(block: bytes, at: int) -> tuple[str, int]:
    """A string literal (§5.2); Huffman-coded ones via the ``hpack`` library."""
    if at >= len(block):
        raise HPACKDecodeError("truncated string")
    huffman = block[at] & 0x80
    length, at = _integer(block, at, 7)
    end = at + length
    if end > len(block):
        raise HPACKDecodeError("string longer than the header block")
    raw = block[at:end]
    if huffman:
        try:
            raw = decode_huffman(raw)
        except Exception as err:  # the library raises its own HPACKDecodingError
            raise HPACKDecodeError(f"bad Huffman string: {err}") from None
    return raw.decode("latin-1"), end
