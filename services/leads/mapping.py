"""From an inbound webhook body (JSON or an HTML form) to the raw fields of a lead, by the source's field mapping.

Pure: `parse_body` reads the bytes, `apply_mapping` picks the lead's fields out of the parsed payload by paths
(docs/leads.md, "Field mapping"), `services.leads.intake.validate_lead` then checks and normalizes them.
Nothing is lost by a mapping that misses a field: the caller keeps the raw body with the touch.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl

from services.leads.normalize import CUSTOM_KEY

SCALAR_TARGETS = ("name", "first_name", "last_name", "email", "phone", "company", "position", "notes")
UTM_PARTS = ("source", "medium", "campaign", "term", "content")
TARGETS = (*SCALAR_TARGETS, "tags", *(f"utm.{part}" for part in UTM_PARTS))
MAX_PATHS_PER_TARGET = 10
MAX_PATH_LENGTH = 500
MAX_FORM_FIELDS = 1000

# Top-level keys an unconfigured source is read by, compared by `_alias_key` (case, spaces, "-", "_" ignored).
ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("name", "full_name", "fullname", "fio", "your_name", "contact_name", "имя", "фио"),
    "first_name": ("first_name", "firstname", "given_name", "fname"),
    "last_name": ("last_name", "lastname", "surname", "family_name", "lname", "фамилия"),
    "email": ("email", "e-mail", "mail", "email_address", "your_email", "почта", "электронная_почта"),
    "phone": ("phone", "tel", "telephone", "phone_number", "mobile", "your_phone", "телефон", "тел"),
    "company": ("company", "company_name", "organization", "organisation", "компания", "организация"),
    "position": ("position", "title", "job_title", "jobtitle", "должность"),
    "notes": ("notes", "note", "comment", "comments", "message", "комментарий", "сообщение"),
    "tags": ("tags", "теги"),
    **{f"utm.{part}": (f"utm_{part}",) for part in UTM_PARTS},
}


class MappingError(Exception):
    """The body or the mapping cannot give a lead; `errors` are [{"field", "code", "message"}]."""

    def __init__(self, errors: Sequence[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = list(errors)


def _error(field: str, code: str, message: str) -> dict[str, str]:
    return {"field": field, "code": code, "message": message}


# ---------------------------------------------------------------------------------------------------- body


def parse_body(content_type: str, body: bytes) -> dict[str, Any]:
    """Reads a webhook body: a JSON object, or an HTML form (repeated keys become lists); raises MappingError."""
    media_type, _, params = content_type.partition(";")
    media_type = media_type.strip().lower()
    charset = _charset(params)
    is_json = media_type in ("application/json", "text/json") or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )
    if not is_json and media_type != "application/x-www-form-urlencoded":
        raise MappingError(
            [
                _error(
                    "body",
                    "unsupported_media_type",
                    f"The body's content type '{media_type or 'none'}' is not supported. Send JSON "
                    "(application/json) or a form (application/x-www-form-urlencoded).",
                )
            ]
        )
    try:
        codec = codecs.lookup(charset or "utf-8")
        _refuse_byte_codecs(codec.name)
    except (LookupError, ValueError):  # ValueError: a NUL in the name
        raise MappingError(
            [_error("body", "unsupported_charset", f"The charset '{charset}' is not known. Send UTF-8.")]
        ) from None
    if is_json:
        # A byte order mark is not part of the content.
        return _parse_json(body, "utf-8-sig" if codec.name == "utf-8" else codec.name)
    return _parse_form(body, codec.name)


def _refuse_byte_codecs(name: str) -> None:
    """Raises LookupError for the codecs that are not text encodings (base64, zlib...)."""
    # bytes.decode refuses them, but not for an empty probe; a text encoding that cannot read this one byte
    # (utf-16) is still a text encoding.
    with contextlib.suppress(UnicodeError):
        b"a".decode(name)


def _charset(params: str) -> str | None:
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').strip() or None
    return None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _parse_json(body: bytes, encoding: str) -> dict[str, Any]:
    try:
        text = body.decode(encoding)
    except UnicodeError:
        raise MappingError(
            [_error("body", "invalid_encoding", f"The body is not valid {encoding.removesuffix('-sig')} text.")]
        ) from None
    try:
        payload = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise MappingError([_error("body", "invalid_json", "The JSON body is nested too deeply.")]) from None
    except ValueError as exc:
        reason = f"{exc.msg} at line {exc.lineno}, column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else exc
        raise MappingError([_error("body", "invalid_json", f"The body is not valid JSON: {reason}.")]) from None
    if not isinstance(payload, dict):
        raise MappingError(
            [_error("body", "not_an_object", "The JSON body must be an object ({...}) with the form's fields.")]
        )
    return payload


def _parse_form(body: bytes, encoding: str) -> dict[str, Any]:
    try:
        text = body.decode("ascii")  # a urlencoded body is ASCII; anything else is percent-escaped inside it
    except UnicodeError:
        # Some senders skip the escaping of non-ASCII text: read the raw bytes in the declared charset.
        try:
            text = body.decode(encoding)
        except UnicodeError:
            raise MappingError(
                [_error("body", "invalid_encoding", f"The form body is not valid {encoding}.")]
            ) from None
    try:
        pairs = parse_qsl(
            text, keep_blank_values=True, encoding=encoding, errors="strict", max_num_fields=MAX_FORM_FIELDS
        )
    except UnicodeError:
        raise MappingError(
            [_error("body", "invalid_encoding", f"The form's values are not valid {encoding}.")]
        ) from None
    except ValueError:
        raise MappingError(
            [_error("body", "too_many_fields", f"The form has more than {MAX_FORM_FIELDS} fields.")]
        ) from None
    form: dict[str, Any] = {}
    for key, value in pairs:
        if key not in form:
            form[key] = value
        elif isinstance(form[key], list):
            form[key].append(value)
        else:
            form[key] = [form[key], value]
    return form


# ---------------------------------------------------------------------------------------------------- paths


@dataclass(frozen=True)
class _Key:
    name: str


@dataclass(frozen=True)
class _Filter:
    keys: tuple[str, ...]
    value: str


_Step = _Key | _Filter


class _PathError(ValueError):
    pass


@lru_cache(maxsize=1024)
def parse_path(path: str) -> tuple[_Step, ...]:
    """Parses a path: `a.b`, `list.0.x`, `list[key.sub=value].x`, with `` `a.b` `` quoting one key."""
    text = path.strip()
    if not text:
        raise _PathError("The path is empty.")
    if len(text) > MAX_PATH_LENGTH:
        raise _PathError(f"The path is longer than {MAX_PATH_LENGTH} characters.")
    steps: list[_Step] = []
    i = 0
    while True:
        key, i = _read_key(text, i, stop=".[]")
        steps.append(_Key(key))
        while i < len(text) and text[i] == "[":
            step, i = _read_filter(text, i + 1)
            steps.append(step)
        if i == len(text):
            return tuple(steps)
        if text[i] != ".":
            raise _PathError(f"Unexpected '{text[i]}' at position {i + 1}; expected '.' or '['.")
        i += 1


def _read_key(text: str, i: int, *, stop: str) -> tuple[str, int]:
    if i < len(text) and text[i] == "`":
        return _read_quoted(text, i + 1)
    start = i
    while i < len(text) and text[i] not in stop and text[i] != "`":
        i += 1
    if i == start:
        where = "at the end" if i == len(text) else f"at position {i + 1}"
        raise _PathError(f"A key is expected {where}; keys are separated by single dots, like contact.email.")
    if i < len(text) and text[i] == "`":
        raise _PathError(f"A backtick at position {i + 1} inside a key; quote the whole key: `like.this`.")
    return text[start:i], i


def _read_quoted(text: str, i: int) -> tuple[str, int]:
    chars: list[str] = []
    while i < len(text):
        if text[i] == "`":
            if text[i + 1 : i + 2] == "`":  # a doubled backtick is one backtick of the key
                chars.append("`")
                i += 2
                continue
            return "".join(chars), i + 1
        chars.append(text[i])
        i += 1
    raise _PathError("A backtick quote is not closed.")


def _read_filter(text: str, i: int) -> tuple[_Filter, int]:
    keys: list[str] = []
    while True:
        key, i = _read_key(text, i, stop=".[]=")
        keys.append(key)
        if i < len(text) and text[i] == ".":
            i += 1
            continue
        break
    if i >= len(text) or text[i] != "=":
        raise _PathError("A list filter must look like [key=value], e.g. fields[name=email].")
    i += 1
    if i < len(text) and text[i] == "`":
        value, i = _read_quoted(text, i + 1)
    else:
        start = i
        while i < len(text) and text[i] not in "[]`":
            i += 1
        value = text[start:i]
    if i >= len(text) or text[i] != "]":
        raise _PathError("A list filter is not closed with ']'.")
    return _Filter(tuple(keys), value), i + 1


def _walk(payload: Any, steps: Sequence[_Step]) -> Any:
    current = payload
    for step in steps:
        if current is None:
            return None
        current = _child(current, step.name) if isinstance(step, _Key) else _first_match(current, step)
    return current


def _child(value: Any, key: str) -> Any:
    if isinstance(value, Mapping):
        return value.get(key)
    if isinstance(value, list | tuple) and key.isascii() and key.isdigit():
        index = int(key)
        return value[index] if index < len(value) else None
    return None


def _first_match(value: Any, step: _Filter) -> Any:
    if not isinstance(value, list | tuple):
        return None
    for item in value:
        found = _walk(item, [_Key(k) for k in step.keys])
        if found is not None and not isinstance(found, Mapping | list | tuple) and _as_text(found) == step.value:
            return item
    return None


def quote_key(key: str) -> str:
    """One key as a path segment: as it is when it can be, else in backticks (a backtick in it doubled)."""
    if key and key == key.strip() and not any(c in key for c in ".[]=`"):
        return key
    return "`" + key.replace("`", "``") + "`"


def resolve(payload: Any, path: str) -> Any | None:
    """The value at `path` in the payload, or None when there is none; raises MappingError for a bad path."""
    try:
        steps = parse_path(path)
    except _PathError as exc:
        raise MappingError([_error("path", "invalid_path", f"The path '{path}' is not valid: {exc}")]) from None
    return _walk(payload, steps)


# ---------------------------------------------------------------------------------------------------- mapping


def _is_target(target: str) -> bool:
    if target in TARGETS:
        return True
    return target.startswith("custom.") and CUSTOM_KEY.fullmatch(target.removeprefix("custom.")) is not None


def validate_mapping(mapping: Any, *, flat: bool = False) -> list[dict[str, str]]:
    """Checks a source's (or, with `flat`, an import's) mapping: targets known, paths (column names) well formed."""
    if not isinstance(mapping, Mapping):
        return [_error("mapping", "invalid_type", 'The mapping must be an object: {"lead field": "path"}.')]
    errors: list[dict[str, str]] = []
    for target, paths in mapping.items():
        field = f"mapping.{target}"
        if not isinstance(target, str) or not _is_target(target):
            errors.append(
                _error(
                    field,
                    "unknown_target",
                    f"'{target}' is not a lead field. Map to one of: {', '.join(TARGETS)}, or custom.<key>.",
                )
            )
            continue
        what = "column name" if flat else "path"
        candidates = [paths] if isinstance(paths, str) else paths
        if (
            not isinstance(candidates, list)
            or not candidates
            or len(candidates) > MAX_PATHS_PER_TARGET
            or not all(isinstance(p, str) for p in candidates)
        ):
            errors.append(
                _error(
                    field,
                    "invalid_path",
                    f"Give a {what} as text, or a list of 1 to {MAX_PATHS_PER_TARGET} of them.",
                )
            )
            continue
        for path in candidates:
            if flat:
                if not path.strip():
                    errors.append(_error(field, "invalid_path", "The column name is empty."))
                continue
            try:
                parse_path(path)
            except _PathError as exc:
                errors.append(_error(field, "invalid_path", f"The path '{path}' is not valid: {exc}"))
    return errors


def apply_mapping(payload: Mapping[str, Any], mapping: Mapping[str, Any], *, flat: bool = False) -> dict[str, Any]:
    """The raw lead fields (nested `utm` and `custom`) found in the payload; raises MappingError.

    Mapped targets take their value from their path(s); a list of paths joins name (with spaces), notes (with
    new lines) and tags, and takes the first non-empty value for the other fields. Targets the mapping leaves
    out are looked up under common top-level names (`ALIASES`). With `flat`, the mapping names top-level keys
    (CSV columns, matched exactly, else case-insensitively) instead of paths.
    """
    errors = _mapping_errors(mapping, flat)
    if errors:
        raise MappingError(list(errors))
    found: dict[str, list[tuple[str, Any]]] = {}
    for target, paths in mapping.items():
        candidates = [paths] if isinstance(paths, str) else list(paths)
        found[target] = [(path, _lookup(payload, path, flat=flat)) for path in candidates]
    mapped_names = {"name", "first_name", "last_name"} & set(mapping)
    for target, key, value in _detected(payload):
        if target in mapping or (target in ("name", "first_name", "last_name") and mapped_names):
            continue
        if not _plain(value):
            continue  # a guess is no reason to refuse the lead: only plain values are taken by name
        found.setdefault(target, []).append((key, value))
    return _assemble(found)


def _mapping_errors(mapping: Mapping[str, Any], flat: bool) -> tuple[dict[str, str], ...]:
    """validate_mapping, remembered: a source or an import applies the same mapping to every request or row."""
    try:
        key = json.dumps(mapping, ensure_ascii=False)
    except (TypeError, ValueError):
        return tuple(validate_mapping(mapping, flat=flat))
    return _checked_mapping(key, flat)


@lru_cache(maxsize=1024)
def _checked_mapping(key: str, flat: bool) -> tuple[dict[str, str], ...]:
    return tuple(validate_mapping(json.loads(key), flat=flat))


def _lookup(payload: Mapping[str, Any], path: str, *, flat: bool) -> Any:
    if not flat:
        return resolve(payload, path)
    if path in payload:
        return payload[path]
    wanted = path.strip().casefold()
    for key, value in payload.items():
        if isinstance(key, str) and key.strip().casefold() == wanted:
            return value
    return None


@lru_cache(maxsize=4096)  # the same few field names or column headers, request after request
def _alias_key(key: str) -> str:
    return re.sub(r"[\W_]+", "", key.casefold())


_BY_ALIAS = {_alias_key(alias): target for target, aliases in ALIASES.items() for alias in aliases}


def _detected(payload: Mapping[str, Any]) -> list[tuple[str, str, Any]]:
    """(target, key, value) for each top-level key that is a common name of a lead field, in payload order."""
    result = []
    for key, value in payload.items():
        if isinstance(key, str) and (target := _BY_ALIAS.get(_alias_key(key))) is not None:
            result.append((target, key, value))
    return result


def _assemble(found: Mapping[str, Sequence[tuple[str, Any]]]) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    utm: dict[str, str] = {}
    custom: dict[str, Any] = {}
    errors: list[dict[str, str]] = []
    texts: dict[str, str] = {}
    for target, values in found.items():
        try:
            if target == "tags":
                tags = [tag for path, value in values for tag in _tags(value, path)]
                if tags:
                    raw["tags"] = tags
            elif target.startswith("custom."):
                custom_value = _first_custom(values, target)
                if custom_value is not None:
                    custom[target.removeprefix("custom.")] = custom_value
            else:
                separator = {"name": " ", "notes": "\n"}.get(target)
                parts = [text for path, value in values if (text := _scalar(value, target, path)) is not None]
                if parts:
                    texts[target] = separator.join(parts) if separator is not None else parts[0]
        except MappingError as exc:
            errors.extend(exc.errors)
    if errors:
        raise MappingError(errors)
    if "name" not in texts:
        full = " ".join(texts[part] for part in ("first_name", "last_name") if part in texts)
        if full:
            texts["name"] = full
    for target, text in texts.items():
        if target.startswith("utm."):
            utm[target.removeprefix("utm.")] = text
        elif target not in ("first_name", "last_name"):
            raw[target] = text
    if utm:
        raw["utm"] = utm
    if custom:
        raw["custom"] = custom
    return raw


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))  # a phone number sent as a JSON number: 79161234567.0 is not what was meant
    return str(value)


def _not_a_value(target: str, path: str) -> MappingError:
    return MappingError(
        [
            _error(
                target,
                "not_a_value",
                f"The value for {target} at '{path}' is an object, not a single value. Map a path to a value "
                f"inside it, e.g. '{path}.{target.rsplit('.', 1)[-1]}'.",
            )
        ]
    )


def _scalar(value: Any, target: str, path: str) -> str | None:
    """The text of a value for a one-value field; None when empty. Lists give their first non-empty element;
    notes keep every element, joined with commas (a multiple-choice answer is worth keeping whole)."""
    if isinstance(value, list | tuple):
        items = [text for item in _flatten(value) if (text := _scalar(item, target, path)) is not None]
        if not items:
            return None
        return ", ".join(items) if target == "notes" else items[0]
    if isinstance(value, Mapping):
        raise _not_a_value(target, path)
    if value is None:
        return None
    text = _as_text(value)
    return text if text.strip() else None


def _plain(value: Any) -> bool:
    """Neither an object nor a list holding one."""
    if isinstance(value, list | tuple):
        return not any(isinstance(item, Mapping) for item in _flatten(value))
    return not isinstance(value, Mapping)


def _flatten(value: Sequence[Any]) -> list[Any]:
    # Iterative, so a deeply nested list in a hostile payload cannot exhaust the stack.
    result: list[Any] = []
    stack: list[Any] = [iter(value)]
    while stack:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
        elif isinstance(item, list | tuple):
            stack.append(iter(item))
        else:
            result.append(item)
    return result


_END = object()
_TAG_SEPARATORS = re.compile(r"[,;]")


def _tags(value: Any, path: str) -> list[str]:
    """Tags from a value: a list gives one tag per element, text is split at commas and semicolons."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        raise _not_a_value("tags", path)
    if isinstance(value, list | tuple):
        tags = []
        for item in _flatten(value):
            if isinstance(item, Mapping):
                raise _not_a_value("tags", path)
            if item is not None and (text := _as_text(item).strip()):
                tags.append(text)
        return tags
    return [tag.strip() for tag in _TAG_SEPARATORS.split(_as_text(value)) if tag.strip()]


def _first_custom(values: Sequence[tuple[str, Any]], target: str) -> Any:
    """A custom field keeps its value's JSON type (check_custom reads numbers, booleans and lists)."""
    for path, value in values:
        if isinstance(value, Mapping):
            raise _not_a_value(target, path)
        if isinstance(value, list | tuple):
            items = _flatten(value)
            if any(isinstance(item, Mapping) for item in items):
                raise _not_a_value(target, path)
            items = [item for item in items if item is not None and not (isinstance(item, str) and not item.strip())]
            if items:
                return items
            continue
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        return value
    return None
