"""Decode a manifest body as strict JSON: UTF-8 text Quay can store, one unambiguous object."""

from __future__ import annotations

import json
import re

from wharf.registry.manifests.errors import ManifestInvalid

# An escaped NUL (\u0000) decodes to a character PostgreSQL text cannot hold; an unpaired
# surrogate escape (\ud800) decodes to a string that cannot be encoded back to UTF-8.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class _DuplicateName(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class _NonFiniteNumber(Exception):
    def __init__(self, literal: str) -> None:
        super().__init__(literal)
        self.literal = literal


def _object_without_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for name, value in pairs:
        if name in result:
            raise _DuplicateName(name)
        result[name] = value
    return result


def _refuse_constant(literal: str) -> object:
    raise _NonFiniteNumber(literal)


def decode_object(raw: bytes) -> tuple[str, dict[str, object]]:
    """The text of `raw` and the JSON object it holds, or `ManifestInvalid` saying why not.

    Refused: an empty body; a NUL byte (Quay keeps manifest bytes in a text column); bytes
    that are not UTF-8; a byte order mark (RFC 8259: senders "MUST NOT add" one); anything
    that is not JSON (NaN and Infinity included); a name twice in one object (RFC 8259: names
    "SHOULD be unique"; two `digest` members would let the registry check one blob and a
    client fetch another); escaped NULs and unpaired surrogates; a top level that is not an
    object.
    """
    if not raw:
        raise ManifestInvalid("the manifest body is empty")
    nul = raw.find(b"\x00")
    if nul != -1:
        raise ManifestInvalid(f"the manifest contains a NUL byte (offset {nul})")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestInvalid(
            f"the manifest is not valid UTF-8 (byte offset {exc.start}: {exc.reason})"
        ) from None
    if text.startswith("\ufeff"):
        raise ManifestInvalid("the manifest starts with a byte order mark, which JSON forbids")
    try:
        value = json.loads(
            text, object_pairs_hook=_object_without_duplicates, parse_constant=_refuse_constant
        )
    except _DuplicateName as exc:
        raise ManifestInvalid(
            f"the member name {_show(exc.name)} appears twice in one JSON object"
        ) from None
    except _NonFiniteNumber as exc:
        raise ManifestInvalid(f"not valid JSON: {exc.literal} is not a JSON number") from None
    except json.JSONDecodeError as exc:
        raise ManifestInvalid(
            f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except ValueError as exc:  # e.g. an integer longer than Python converts
        raise ManifestInvalid(f"not valid JSON: {exc}") from None
    except RecursionError:
        raise ManifestInvalid("not valid JSON: nested too deeply") from None
    if not isinstance(value, dict):
        raise ManifestInvalid(f"the manifest must be a JSON object, not {json_kind(value)}")
    _check_strings(value)
    return text, value


def _check_strings(root: dict[str, object]) -> None:
    stack: list[tuple[object, str]] = [(root, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            _check_string(value, path or "the manifest")
        elif isinstance(value, dict):
            for name, member in value.items():
                _check_string(name, f"a member name in {path or 'the top-level object'}")
                stack.append((member, f"{path}.{name}" if path else name))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{i}]") for i, item in enumerate(value))


def _check_string(value: str, where: str) -> None:
    bad = _UNSTORABLE.search(value)
    if bad is None:
        return
    if bad.group() == "\x00":
        raise ManifestInvalid("contains an escaped NUL character (\\u0000)", field=where)
    raise ManifestInvalid("contains an unpaired UTF-16 surrogate escape", field=where)


def json_kind(value: object) -> str:
    """How a decoded JSON value is named in reasons: "null", "a boolean", "an array", ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _show(value: str, limit: int = 80) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "...")
