"""``google.api.http`` path templates: parse once into a regex, match, bind variables.

Grammar (google/api/http.proto): ``Template = "/" Segments [ ":" Verb ]``, a segment
is a literal, ``*`` (one segment), ``**`` (the rest) or ``{field.path[=Segments]}``.
A match yields ``{field.path: value}`` with single-segment values percent-decoded
(multi-segment values keep ``%2F`` as they came, as the spec asks).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

__all__ = ["BadPathValue", "PathTemplate", "TemplateError"]

_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_LITERAL = re.compile(r"[A-Za-z0-9._~!$&'()+,;=@-]+|%[0-9A-Fa-f]{2}")


_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


class TemplateError(ValueError):
    """A path template that does not follow the google.api.http grammar."""


class BadPathValue(ValueError):
    """A path variable that is not valid percent-encoded UTF-8 (so two raw ids cannot alias)."""

    def __init__(self, field: str) -> None:
        super().__init__(f"{field}: invalid percent-encoding or not UTF-8")
        self.field = field


def _decode(value: str, field: str) -> str:
    if _BAD_PERCENT.search(value):
        raise BadPathValue(field)
    try:
        return unquote(value, errors="strict")
    except UnicodeDecodeError:
        raise BadPathValue(field) from None


def _segments(text: str, template: str) -> tuple[str, bool]:
    """Regex for ``a/*/**`` and whether it can span several segments."""
    parts: list[str] = []
    multi = False
    for seg in text.split("/"):
        if seg == "*":
            parts.append("[^/]+")
        elif seg == "**":
            parts.append(".+")
            multi = True
        elif seg and all(_LITERAL.fullmatch(c) for c in re.findall(r"%..|[^%]+", seg)):
            parts.append(re.escape(seg))
        else:
            raise TemplateError(f"path template {template!r}: bad segment {seg!r}")
    return "/".join(parts), multi or len(parts) > 1


def _split(path: str, template: str) -> list[str]:
    """Top-level ``/``-separated segments; a ``{var=a/*}`` stays one segment."""
    out, depth, current = [], 0, ""
    for ch in path:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth not in (0, 1):
            raise TemplateError(f"path template {template!r}: unbalanced braces")
        if ch == "/" and depth == 0:
            out.append(current)
            current = ""
        else:
            current += ch
    if depth:
        raise TemplateError(f"path template {template!r}: unbalanced braces")
    out.append(current)
    return out


@dataclass(frozen=True)
class PathTemplate:
    """A compiled template; :meth:`match` returns the bound variables or ``None``."""

    template: str
    regex: re.Pattern[str]
    fields: tuple[str, ...]
    multi: frozenset[str]

    @classmethod
    def parse(cls, template: str) -> PathTemplate:
        if not template.startswith("/"):
            raise TemplateError(f"path template {template!r} must start with '/'")
        path, verb = template, ""
        last = template.rsplit("/", 1)[-1]
        if ":" in last and "}" not in last.split(":", 1)[1]:
            path, verb = template.rsplit(":", 1)
        pattern: list[str] = []
        fields: list[str] = []
        multi: set[str] = set()
        for seg in _split(path[1:], template) if path != "/" else []:
            if not (seg.startswith("{") and seg.endswith("}")):
                pattern.append(_segments(seg, template)[0])
                continue
            name, _, sub = seg[1:-1].partition("=")
            if not _FIELD.fullmatch(name) or name in fields:
                raise TemplateError(f"path template {template!r}: bad or repeated variable {name!r}")
            regex, spans = _segments(sub or "*", template)
            if spans:
                multi.add(name)
            pattern.append(f"(?P<v{len(fields)}>{regex})")
            fields.append(name)
        body = "/" + "/".join(pattern) + (f":{re.escape(verb)}" if verb else "")
        return cls(template, re.compile(body), tuple(fields), frozenset(multi))

    def match(self, raw_path: str) -> dict[str, str] | None:
        """Variables bound by ``raw_path`` (still percent-encoded), or ``None`` if it does not match;
        :class:`BadPathValue` for a value that does not decode."""
        m = self.regex.fullmatch(raw_path)
        if m is None:
            return None
        out: dict[str, str] = {}
        for i, name in enumerate(self.fields):
            value = m.group(f"v{i}")
            if name in self.multi:
                if _BAD_PERCENT.search(value):
                    raise BadPathValue(name)
                out[name] = value
            else:
                out[name] = _decode(value, name)
        return out

    @property
    def literal_weight(self) -> int:
        """More literal characters first when two templates could match the same path."""
        return len(re.sub(r"\{[^}]*\}", "", self.template))
