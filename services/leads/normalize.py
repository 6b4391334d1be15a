"""The workspace's normalization rules for lead fields: email, E.164 phone, text, tags and custom fields.

Pure functions: `services.leads.intake` calls them on every lead, the settings API calls `validate_definitions`.
Messages of the ValueErrors and field errors raised here are shown to end users as they are.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import asyncpg
import phonenumbers
from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from phonenumbers import NumberParseException, PhoneNumberFormat, ValidationResult

# ---------------------------------------------------------------------------------------------------- email


# The common shape of an address, which email_validator would accept unchanged: checked with one regex, it
# costs a microsecond instead of fifty, which matters for batches and imports. Anything else (quoted or unusual
# local parts, IDNA, special-use domains, overlong) goes to email_validator.
_PLAIN_EMAIL = re.compile(
    r"[a-z0-9_%+-]+(?:\.[a-z0-9_%+-]+)*@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
)
_SPECIAL_USE_TLDS = frozenset(SPECIAL_USE_DOMAIN_NAMES)


def _plain_email(address: str) -> bool:
    if len(address) > 254 or _PLAIN_EMAIL.fullmatch(address) is None:
        return False
    local, _, domain = address.partition("@")
    # "--" in a label is reserved for IDNA forms ("xn--"), which email_validator rules on.
    return len(local) <= 64 and "--" not in domain and domain.rsplit(".", 1)[-1] not in _SPECIAL_USE_TLDS


def normalize_email(value: str) -> str:
    """Trims and lower-cases an address and checks its syntax (no DNS lookup); raises ValueError when invalid.

    The whole address is lower-cased, local part included: mail systems that tell `Ann@` from `ann@` are
    rare, and a dedupe key that does is a source of duplicate leads.
    """
    text = value.strip()
    if text[:7].lower() == "mailto:":
        text = text[7:].strip()
    if not text:
        raise ValueError("The email address is empty. Expected an address like name@example.com.")
    lowered = text.lower()
    if _plain_email(lowered):
        return lowered
    try:
        checked = validate_email(text.lower(), check_deliverability=False)
    except EmailNotValidError as exc:
        # email_validator's messages already say what is wrong ("An email address must have an @-sign.").
        raise ValueError(f"{exc} Expected an address like name@example.com.") from exc
    return checked.normalized.lower()


# ---------------------------------------------------------------------------------------------------- phone

_PHONE_EXAMPLE = "+44 20 7946 0958"


def normalize_phone(value: str, region: str | None) -> str:
    """Parses a phone number in any common format into E.164 ("+79161234567"); raises ValueError when it is not.

    `region` is the workspace's default region (ISO 3166 alpha-2): numbers written without a country code
    are read as that region's numbers ("8 916 123 45 67" with RU). Without a region, a number needs its
    country code (a leading + or 00). The number must be valid by libphonenumber's metadata (number ranges
    in use), not just of a possible length, so that "+7 000 000 00 00" or a mistyped digit count is refused.
    An extension ("ext. 12", ";ext=12") is dropped: E.164 cannot hold one, and the caller keeps the raw input.
    """
    text = value.strip()
    if not text:
        raise ValueError(f"The phone number is empty. Expected a number like {_PHONE_EXAMPLE}.")
    region = region.strip().upper() if region and region.strip() else None
    text = _international_prefix_as_plus(text)
    has_country_code = (text[4:] if text[:4].lower() == "tel:" else text).lstrip().startswith("+")
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        if exc.error_type == NumberParseException.INVALID_COUNTRY_CODE and not has_country_code:
            if region is None:
                raise ValueError(
                    f"The phone number needs a country code, e.g. {_PHONE_EXAMPLE}: start it with + or 00 "
                    "(this workspace has no default phone region)."
                ) from exc
            raise ValueError(
                f"The phone number could not be read for the region {region}. "
                f"Add the country code, e.g. {_PHONE_EXAMPLE}."
            ) from exc
        if exc.error_type == NumberParseException.INVALID_COUNTRY_CODE:
            raise ValueError(
                f"The phone number starts with an unknown country code. Expected a number like {_PHONE_EXAMPLE}."
            ) from exc
        if exc.error_type in (NumberParseException.TOO_SHORT_NSN, NumberParseException.TOO_SHORT_AFTER_IDD):
            raise ValueError(f"The phone number is too short. Expected a number like {_PHONE_EXAMPLE}.") from exc
        if exc.error_type == NumberParseException.TOO_LONG:
            raise ValueError(f"The phone number is too long. Expected a number like {_PHONE_EXAMPLE}.") from exc
        raise ValueError(f"This is not a phone number. Expected digits, like {_PHONE_EXAMPLE}.") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError(_invalid_number_message(number, region, with_country_code=has_country_code))
    number.extension = None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def _international_prefix_as_plus(text: str) -> str:
    # "00 44 ..." is the international prefix almost everywhere; libphonenumber only reads it as such when
    # the default region is known, so without one it would refuse a number that has its country code.
    digits_at = 4 if text[:4].lower() == "tel:" else 0
    rest = text[digits_at:].lstrip(" (")
    if rest.startswith("00") and not rest.startswith("000"):
        return "+" + rest[2:]
    return text


def _invalid_number_message(number: phonenumbers.PhoneNumber, region: str | None, *, with_country_code: bool) -> str:
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason == ValidationResult.TOO_SHORT:
        problem = "The phone number is too short"
    elif reason == ValidationResult.INVALID_LENGTH:
        problem = "The phone number has the wrong number of digits"
    elif reason == ValidationResult.TOO_LONG:
        problem = "The phone number is too long"
    elif reason == ValidationResult.INVALID_COUNTRY_CODE:
        return f"The phone number starts with an unknown country code. Expected a number like {_PHONE_EXAMPLE}."
    else:
        problem = "The phone number is not a valid number"
    country = phonenumbers.region_code_for_number(number) or region
    if with_country_code or region is None:
        where = f" for its country code +{number.country_code}"
        return f"{problem}{where}. Check the digits; expected a number like {_PHONE_EXAMPLE}."
    return (
        f"{problem} for the region {country}. Check the digits, or add the country code if the number is from "
        f"another country, e.g. {_PHONE_EXAMPLE}."
    )


# ---------------------------------------------------------------------------------------------------- text

# \s covers tabs, newlines and the Unicode spaces (NBSP, thin space, ideographic space...). The zero-width
# space, word joiner and BOM are not whitespace to Python but separate nothing visible; the zero-width
# (non-)joiners are left alone, Persian and Indic spellings need them.
_SPACES = re.compile(r"[\s\u200b\u2060\ufeff]+")


def clean_text(value: str) -> str | None:
    """Strips and collapses every run of whitespace (tabs, newlines, NBSP...) to one space; None when empty."""
    cleaned = _SPACES.sub(" ", value).strip()
    return cleaned or None


def normalize_tags(tags: Sequence[str]) -> list[str]:
    """Cleans each tag, drops empty ones, and removes case-insensitive repeats keeping the first spelling."""
    seen: set[str] = set()
    result: list[str] = []
    for tag in tags:
        cleaned = clean_text(tag)
        if cleaned is None:
            continue
        key = cleaned.casefold()
        if key not in seen:
            seen.add(key)
            result.append(cleaned)
    return result


# ---------------------------------------------------------------------------------------------------- custom

FIELD_TYPES = ("text", "number", "boolean", "date", "select", "multiselect")
MAX_DEFINITIONS = 100
MAX_TEXT_LENGTH = 2000
MAX_OPTIONS = 200
MAX_OPTION_LENGTH = 100
MAX_LABEL_LENGTH = 100
# A custom field key: also the `custom.<key>` target of a field mapping.
CUSTOM_KEY = re.compile(r"[a-z][a-z0-9_]{0,49}")
# Numbers are kept exact: integers as JSON integers, anything else as a decimal string ("12.5"). 15 integer
# digits and 10 decimals cover money and quantities; beyond that a float or a JavaScript client loses digits.
_MAX_INTEGER_DIGITS = 15
_MAX_DECIMALS = 10
_TRUE = frozenset({"true", "yes", "y", "1", "on", "да", "д"})
_FALSE = frozenset({"false", "no", "n", "0", "off", "нет", "н"})


class _Invalid(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def check_custom(
    values: Mapping[str, Any], definitions: Sequence[Mapping[str, Any]]
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """Checks custom field values against the workspace's definitions; returns (cleaned values, field errors).

    Cleaned values: text stripped; numbers as int when whole, else a decimal string ("12.5"); booleans as
    bool; dates as "YYYY-MM-DD"; select as the option's own spelling; multiselect as a list of options.
    A value that is None or empty counts as absent: dropped, or reported `missing` when the field is required.
    """
    by_key = {d["key"]: d for d in definitions if isinstance(d.get("key"), str)}
    cleaned: dict[str, Any] = {}
    errors: list[dict[str, str]] = []
    for key, value in values.items():
        definition = by_key.get(key)
        field = f"custom.{key}"
        if definition is None:
            errors.append(
                {"field": field, "code": "unknown_field", "message": f"There is no custom field with the key '{key}'."}
            )
            continue
        try:
            result = _check_value(value, definition)
        except _Invalid as exc:
            errors.append({"field": field, "code": exc.code, "message": exc.message})
            continue
        if result is not None:
            cleaned[key] = result
    for key, definition in by_key.items():
        if definition.get("required") and key not in cleaned and not any(e["field"] == f"custom.{key}" for e in errors):
            label = definition.get("label") or key
            errors.append({"field": f"custom.{key}", "code": "missing", "message": f"'{label}' is required."})
    return cleaned, errors


def _check_value(value: Any, definition: Mapping[str, Any]) -> Any:
    """The cleaned value, None when absent, or _Invalid."""
    if value is None:
        return None
    label = str(definition.get("label") or definition.get("key"))
    kind = definition.get("type", "text")
    if kind == "number":
        return _number(value, label)
    if kind == "boolean":
        return _boolean(value, label)
    if kind == "date":
        return _date(value, label)
    if kind == "select":
        return _select(value, definition, label)
    if kind == "multiselect":
        return _multiselect(value, definition, label)
    return _text(value, label)


def _text(value: Any, label: str) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _Invalid("invalid_type", f"'{label}' must be text.")
    text = value.strip() if isinstance(value, str) else str(value)
    if len(text) > MAX_TEXT_LENGTH:
        raise _Invalid("too_long", f"'{label}' must be at most {MAX_TEXT_LENGTH} characters long.")
    return text or None


def _number(value: Any, label: str) -> int | str | None:
    expected = f"'{label}' must be a number, like 42 or 12.5."
    if isinstance(value, bool):
        raise _Invalid("invalid_type", expected)
    if isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))  # repr is the shortest text that reads back as the same float
    elif isinstance(value, str):
        text = _SPACES.sub("", value)
        if not text:
            return None
        # "12,5" is how half of Europe writes 12.5. "1,000" could be a thousand or one: refused, not guessed.
        whole, comma, fraction = text.partition(",")
        if comma and "," not in fraction and "." not in text:
            if len(fraction) == 3 and whole.lstrip("+-") not in ("", "0"):
                raise _Invalid(
                    "invalid_type", f"{expected[:-1]} ('{value.strip()}' is ambiguous: write 1000 or 1.000)."
                )
            text = f"{whole}.{fraction}"
        if len(text) > 40:
            raise _Invalid("invalid_type", expected)
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise _Invalid("invalid_type", expected) from None
    else:
        raise _Invalid("invalid_type", expected)
    if not number.is_finite():
        raise _Invalid("invalid_type", expected)
    if abs(number) >= Decimal(10) ** _MAX_INTEGER_DIGITS:
        raise _Invalid(
            "invalid_type", f"'{label}' is too large: at most {_MAX_INTEGER_DIGITS} digits before the decimal point."
        )
    if isinstance(value, int):
        return value
    if number == number.to_integral_value():
        return int(number)
    normalized = number.normalize()
    exponent = normalized.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > _MAX_DECIMALS:
        raise _Invalid("invalid_type", f"'{label}' must have at most {_MAX_DECIMALS} digits after the decimal point.")
    return format(normalized, "f")


def _boolean(value: Any, label: str) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if not word:
            return None
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise _Invalid("invalid_type", f"'{label}' must be true or false (also accepted: yes/no, 1/0, on/off).")


_DOTTED_DATE = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})")


def _date(value: Any, label: str) -> str | None:
    expected = f"'{label}' must be a date like 2024-05-31 (or 31.05.2024)."
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if not isinstance(value, str):
        raise _Invalid("invalid_type", expected)
    text = value.strip()
    if not text:
        return None
    dotted = _DOTTED_DATE.fullmatch(text)
    try:
        if dotted:
            day, month, year = (int(g) for g in dotted.groups())
            return dt.date(year, month, day).isoformat()
        if len(text) <= 10:
            return dt.date.fromisoformat(text).isoformat()
        # A timestamp for a date field: its date as written, without moving it to another time zone.
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).date().isoformat()
    except ValueError:
        raise _Invalid("invalid_type", expected) from None


def _options(definition: Mapping[str, Any]) -> list[str]:
    options = definition.get("options") or []
    return [o for o in options if isinstance(o, str)]


def _match_option(value: str, options: Sequence[str]) -> str | None:
    if value in options:
        return value
    wanted = clean_text(value)
    if wanted is None:
        return None
    folded = wanted.casefold()
    for option in options:
        if (clean_text(option) or "").casefold() == folded:
            return option
    return None


def _options_message(label: str, options: Sequence[str]) -> str:
    shown = ", ".join(f"'{o}'" for o in options[:20])
    more = f" and {len(options) - 20} more" if len(options) > 20 else ""
    return f"'{label}' must be one of: {shown}{more}."


def _select(value: Any, definition: Mapping[str, Any], label: str) -> str | None:
    options = _options(definition)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _Invalid("invalid_type", f"'{label}' must be one option, given as text.")
    text = value if isinstance(value, str) else str(value)
    if not text.strip():
        return None
    option = _match_option(text, options)
    if option is None:
        raise _Invalid("invalid_option", _options_message(label, options))
    return option


_LIST_SEPARATORS = re.compile(r"[,;]")


def _multiselect(value: Any, definition: Mapping[str, Any], label: str) -> list[str] | None:
    options = _options(definition)
    if isinstance(value, str):
        if not value.strip():
            return None
        # One form checkbox arrives as a single string, a CSV cell as "a, b": a whole-option match wins.
        whole = _match_option(value, options)
        items: list[Any] = [whole] if whole is not None else _LIST_SEPARATORS.split(value)
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise _Invalid("invalid_type", f"'{label}' must be a list of options.")
    chosen: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise _Invalid("invalid_type", f"'{label}' must be a list of options, each given as text.")
        if not item.strip():
            continue
        option = _match_option(item, options)
        if option is None:
            raise _Invalid("invalid_option", f"'{item.strip()}' is not an option. {_options_message(label, options)}")
        if option not in chosen:
            chosen.append(option)
    return chosen or None


def validate_definitions(definitions: Any, *, prefix: str = "custom_fields") -> list[dict[str, str]]:
    """Checks custom field definitions for the settings API; returns field errors named `<prefix>.<i>.<attr>`."""
    if not isinstance(definitions, list | tuple):
        return [{"field": prefix, "code": "invalid_type", "message": "Custom fields must be a list of definitions."}]
    errors: list[dict[str, str]] = []

    def error(field: str, code: str, message: str) -> None:
        errors.append({"field": field, "code": code, "message": message})

    if len(definitions) > MAX_DEFINITIONS:
        error(prefix, "too_many", f"A workspace can have at most {MAX_DEFINITIONS} custom fields.")
    seen: set[str] = set()
    for i, definition in enumerate(definitions):
        at = f"{prefix}.{i}"
        if not isinstance(definition, Mapping):
            error(at, "invalid_type", "Each custom field must be an object with key, label and type.")
            continue
        unknown = sorted(set(definition) - {"key", "label", "type", "required", "options"})
        for name in unknown:
            error(f"{at}.{name}", "unknown_attribute", f"'{name}' is not a custom field attribute.")
        key = definition.get("key")
        if not isinstance(key, str) or not CUSTOM_KEY.fullmatch(key):
            error(
                f"{at}.key",
                "invalid_key",
                "The key must start with a lower-case Latin letter and contain only lower-case Latin letters, "
                "digits and underscores, at most 50 characters (e.g. 'budget' or 'lead_source_2').",
            )
        elif key in seen:
            error(f"{at}.key", "duplicate_key", f"The key '{key}' is used by another custom field.")
        else:
            seen.add(key)
        label = definition.get("label")
        if not isinstance(label, str) or clean_text(label) is None:
            error(f"{at}.label", "missing", "Each custom field needs a label, the name people see.")
        elif len(label) > MAX_LABEL_LENGTH:
            error(f"{at}.label", "too_long", f"The label must be at most {MAX_LABEL_LENGTH} characters long.")
        kind = definition.get("type")
        if kind not in FIELD_TYPES:
            error(f"{at}.type", "invalid_type", f"The type must be one of: {', '.join(FIELD_TYPES)}.")
        required = definition.get("required", False)
        if not isinstance(required, bool):
            error(f"{at}.required", "invalid_type", "'required' must be true or false.")
        options = definition.get("options")
        if kind in ("select", "multiselect"):
            _check_options(options, f"{at}.options", error)
        elif options not in (None, []):
            error(f"{at}.options", "not_allowed", "Options are only for select and multiselect fields.")
    return errors


def _check_options(options: Any, field: str, error: Callable[[str, str, str], None]) -> None:
    if not isinstance(options, list | tuple) or not options:
        error(field, "missing", "A select or multiselect field needs a list of options.")
        return
    if len(options) > MAX_OPTIONS:
        error(field, "too_many", f"A field can have at most {MAX_OPTIONS} options.")
    seen: set[str] = set()
    for j, option in enumerate(options):
        if not isinstance(option, str) or clean_text(option) is None:
            error(f"{field}.{j}", "invalid_option", "Each option must be non-empty text.")
            continue
        if len(option) > MAX_OPTION_LENGTH:
            error(f"{field}.{j}", "too_long", f"An option must be at most {MAX_OPTION_LENGTH} characters long.")
        folded = (clean_text(option) or "").casefold()
        if folded in seen:
            error(f"{field}.{j}", "duplicate_option", f"The option '{option}' is listed twice.")
        seen.add(folded)


def lead_country(lead: Mapping[str, Any] | asyncpg.Record) -> str | None:
    """The lead's custom field `country` when set, else the country of its phone number (E.164)."""
    custom = lead["custom"] or {}
    country = custom.get("country")
    if isinstance(country, str) and country.strip():
        return country.strip().upper()
    if not lead["phone"]:
        return None
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(lead["phone"]))
    except phonenumbers.NumberParseException:
        return None
    return region if region and region != "ZZ" else None
