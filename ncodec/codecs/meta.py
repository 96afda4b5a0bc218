"""Header ``meta`` schemas: what each codec's file-level fields may hold, checked in one place.

A codec declares its fields once (:class:`MetaField` per key) and :func:`check_meta` refuses a
header whose fields are missing, of another JSON type or out of range, with
:class:`ncodec.BitstreamError` naming the field. Only integers, strings and booleans need
declaring; structured fields (an image's ``latent_shape``) are declared as ``object`` and
checked by their codec, which knows what they mean.

Guarantees: ``check_meta`` raises nothing but ``BitstreamError`` for any JSON object the
container accepts, reads each declared key once, and returns the meta unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

from ncodec.errors import BitstreamError

__all__ = ["MetaField", "check_meta"]

_JSON_TYPES = {int: "an integer", str: "a string", bool: "a boolean", float: "a number", object: "a value"}


@dataclass(frozen=True)
class MetaField:
    """One ``meta`` key of a file header.

    Attributes:
        kind: ``int``, ``float`` (ints accepted too), ``str``, ``bool``, or ``object`` (any JSON
            value: checked by the codec).
        lo, hi: inclusive bounds for numbers (None: unbounded).
        choices: the allowed values (None: any of ``kind``).
        required: whether files must have it (optional fields may be absent, not null).
    """

    kind: type = int
    lo: Optional[float] = None
    hi: Optional[float] = None
    choices: Optional[tuple] = None
    required: bool = True

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` (as ``json.loads`` gives it) is of this field's type and range."""
        if self.kind is object:
            return True
        if self.kind is float:
            ok = type(value) in (int, float)
        else:
            ok = type(value) is self.kind  # bool is not an int here, nor an int a bool
        if not ok:
            return False
        if self.choices is not None and value not in self.choices:
            return False
        if self.lo is not None and value < self.lo:
            return False
        return self.hi is None or value <= self.hi

    def describe(self) -> str:
        """The field's rule, for messages and docs (``"an integer in 1..8"``)."""
        if self.choices is not None:
            return "one of " + ", ".join(map(repr, self.choices))
        text = _JSON_TYPES.get(self.kind, self.kind.__name__)
        if self.lo is not None or self.hi is not None:
            lo = "" if self.lo is None else f"{self.lo:g}"
            hi = "" if self.hi is None else f"{self.hi:g}"
            text += f" in {lo}..{hi}"
        return text


def check_meta(meta: Any, schema: Mapping[str, MetaField], what: str) -> dict:
    """``meta`` after checking it against ``schema``.

    Args:
        meta: the header's ``meta`` (any JSON value a hostile file may carry).
        schema: ``{key: MetaField}``; keys not in the schema are allowed and ignored.
        what: names the file kind in messages (``"image"``, ``"audio"``).

    Raises:
        ncodec.BitstreamError: ``meta`` is not an object, or a declared field is missing or
            breaks its rule.
    """
    if not isinstance(meta, dict):
        raise BitstreamError(f"{what} file header's meta is not a JSON object")
    for key, rule in schema.items():
        if key not in meta:
            if rule.required:
                raise BitstreamError(f"{what} file header lacks {key!r}")
            continue
        if not rule.accepts(meta[key]):
            raise BitstreamError(f"{what} file header has an invalid {key}: {_short(meta[key])} "
                                 f"(expected {rule.describe()})")
    return meta


def _short(value: Any) -> str:
    text = repr(value) if isinstance(value, (int, float, str, bool, type(None))) else f"a {type(value).__name__}"
    return text if len(text) <= 60 else text[:57] + "..."
