"""The workspace's normalization rules: what a lead's email, phone, text, tags and custom fields become."""

from __future__ import annotations

import datetime as dt
import string

import phonenumbers
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from services.leads import normalize
from services.leads.normalize import (
    check_custom,
    clean_text,
    normalize_email,
    normalize_phone,
    normalize_tags,
    validate_definitions,
)

# ---------------------------------------------------------------------------------------------------- email


@pytest.mark.parametrize(
    ("given_", "expected"),
    [
        ("ann@example.com", "ann@example.com"),
        ("  Ann.Lee@Example.COM \n", "ann.lee@example.com"),
        ("mailto:Ann@Example.com", "ann@example.com"),
        ("a@b.c", "a@b.c"),
        ("Ivan@ПОЧТА.РФ", "ivan@почта.рф"),
        ("first+tag@sub.example.org", "first+tag@sub.example.org"),
    ],
)
def test_email_is_trimmed_and_lower_cased(given_, expected):
    assert normalize_email(given_) == expected


@pytest.mark.parametrize(
    ("given_", "says"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("ann", "@-sign"),
        ("ann@@example.com", "invalid characters"),
        ("ann lee@example.com", "invalid characters"),
        ("ann@localhost", "period"),
        ("ann..lee@example.com", "two periods"),
        ("ann@example.com.", "period"),
    ],
)
def test_invalid_email_is_refused_saying_what_is_wrong(given_, says):
    with pytest.raises(ValueError, match=r"Expected an address like name@example\.com") as info:
        normalize_email(given_)
    assert says in str(info.value)


@given(st.emails())
def test_any_valid_email_normalizes_to_a_fixed_point(email):
    try:
        once = normalize_email(email)
    except ValueError:
        return  # hypothesis' addresses include special-use domains that email_validator refuses
    assert once == once.lower() == once.strip()
    assert normalize_email(once) == once
    assert normalize_email(f"  {email.upper()}  ") == once


@given(st.text(max_size=60))
def test_email_normalizer_raises_only_value_error(text):
    try:
        result = normalize_email(text)
    except ValueError as exc:
        message = str(exc)
        assert message
    else:
        assert "@" in result
        assert result == result.lower()


# ---------------------------------------------------------------------------------------------------- phone


@pytest.mark.parametrize(
    ("given_", "region", "expected"),
    [
        ("+7 (916) 123-45-67", None, "+79161234567"),
        ("+7 (916) 123-45-67", "US", "+79161234567"),
        ("8 916 123 45 67", "RU", "+79161234567"),
        ("8 916 123 45 67", "ru", "+79161234567"),
        ("916 123 45 67", "RU", "+79161234567"),
        ("00 44 20 7946 0958", None, "+442079460958"),
        ("0044 20 7946 0958", "RU", "+442079460958"),
        ("+44 (0)20 7946 0958", None, "+442079460958"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("tel:+1-202-555-0143", None, "+12025550143"),
        ("+1 202 555 0143", None, "+12025550143"),
        ("(202) 555-0143", "US", "+12025550143"),
        ("+49 30 123456", None, "+4930123456"),
        ("+1 202 555 0143 ext. 12", None, "+12025550143"),
        ("+7 916 123-45-67 доб. 123", None, "+79161234567"),
        ("\u00a0+7\u00a0916\u00a01234567\t", None, "+79161234567"),
    ],
)
def test_common_phone_formats_become_e164(given_, region, expected):
    assert normalize_phone(given_, region) == expected


def test_number_without_country_code_needs_one_when_workspace_has_no_region():
    with pytest.raises(ValueError, match="needs a country code") as info:
        normalize_phone("8 916 123 45 67", None)
    assert "no default phone region" in str(info.value)


@pytest.mark.parametrize(
    ("given_", "region", "says"),
    [
        ("abc", None, "not a phone number"),
        ("abc", "RU", "not a phone number"),
        ("", "RU", "empty"),
        ("+", None, "not a phone number"),
        ("12345", "RU", "too short"),
        ("+7 916 123 45 67 89", None, "wrong number of digits"),
        ("+7 000 000 00 00", None, "not a valid number"),
        ("+1 555 555 5555", None, "not a valid number"),
        ("+999 123456", None, "unknown country code"),
        ("2025550143", "RU", "add the country code"),
    ],
)
def test_not_a_phone_number_is_refused_saying_why(given_, region, says):
    with pytest.raises(ValueError, match=says):
        normalize_phone(given_, region)


def test_no_region_message_differs_from_not_a_number():
    with pytest.raises(ValueError, match="country code") as no_code:
        normalize_phone("916 123 45 67", None)
    with pytest.raises(ValueError, match="not a phone number") as garbage:
        normalize_phone("call me", None)
    assert "not a phone number" not in str(no_code.value)
    assert "country code" not in str(garbage.value)


REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)


@given(st.sampled_from(REGIONS), st.sampled_from(REGIONS), st.sampled_from([" ", "-", "", "  "]))
def test_example_numbers_of_every_region_round_trip(region, workspace_region, separator):
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    assume(example is not None)
    e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
    international = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    assert normalize_phone(international.replace(" ", separator), workspace_region) == e164
    assert normalize_phone(e164, None) == e164
    assert normalize_phone("00" + e164[1:], None) == e164
    national = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL)
    assert normalize_phone(national, region) == e164


@given(st.text(alphabet=string.digits + " +-()tel:x.", max_size=30), st.sampled_from([None, "RU", "US", "GB", "DE"]))
def test_phone_normalizer_gives_e164_or_a_value_error(text, region):
    try:
        result = normalize_phone(text, region)
    except ValueError as exc:
        message = str(exc)
        assert message
    else:
        assert result.startswith("+")
        assert result[1:].isdigit()
        assert normalize_phone(result, None) == result


# ---------------------------------------------------------------------------------------------------- text


@pytest.mark.parametrize(
    ("given_", "expected"),
    [
        ("  Ann   Lee ", "Ann Lee"),
        ("Ann\tLee\nJr", "Ann Lee Jr"),
        ("Ann\u00a0Lee", "Ann Lee"),
        ("Ann\u200bLee", "Ann Lee"),
        ("\ufeffAnn", "Ann"),
        (
            "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
            "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
        ),  # a ZWNJ stays
        ("", None),
        (" \t\n\u00a0", None),
        ("Анна", "Анна"),
    ],
)
def test_clean_text_collapses_whitespace(given_, expected):
    assert clean_text(given_) == expected


@given(st.text())
def test_clean_text_is_idempotent_and_has_no_runs_of_space(text):
    cleaned = clean_text(text)
    if cleaned is None:
        assert not text.replace("\u200b", " ").replace("\u2060", " ").replace("\ufeff", " ").split()
        return
    assert cleaned == cleaned.strip()
    assert "  " not in cleaned
    assert not any(c in cleaned for c in "\t\n\r\u00a0")
    assert clean_text(cleaned) == cleaned


def test_tags_are_cleaned_and_deduplicated_keeping_first_spelling():
    assert normalize_tags(["VIP", " vip ", "", "  ", "Webinar  2024", "webinar 2024", "new"]) == [
        "VIP",
        "Webinar 2024",
        "new",
    ]


@given(st.lists(st.text(max_size=10), max_size=20))
def test_tags_against_a_brute_force_model(tags):
    result = normalize_tags(tags)
    expected: list[str] = []
    for tag in tags:
        cleaned = clean_text(tag)
        if cleaned and all(e.casefold() != cleaned.casefold() for e in expected):
            expected.append(cleaned)
    assert result == expected
    assert normalize_tags(result) == result


# ---------------------------------------------------------------------------------------------------- custom

DEFINITIONS = [
    {"key": "budget", "label": "Budget", "type": "number", "required": False},
    {"key": "seats", "label": "Seats", "type": "number"},
    {"key": "consent", "label": "Consent", "type": "boolean", "required": True},
    {"key": "meeting", "label": "Meeting date", "type": "date"},
    {"key": "size", "label": "Company size", "type": "select", "options": ["1-10", "11-50", "51+"]},
    {"key": "topics", "label": "Topics", "type": "multiselect", "options": ["CRM", "Email, SMS", "Reports"]},
    {"key": "referrer", "label": "Referrer", "type": "text"},
]


def only(values):
    cleaned, errors = check_custom({"consent": True, **values}, DEFINITIONS)
    cleaned.pop("consent")
    return cleaned, errors


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (12, 12),
        (10**14, 10**14),
        (-3, -3),
        (12.5, "12.5"),
        (12.0, 12),
        (0.1, "0.1"),
        ("12", 12),
        ("12.50", "12.5"),
        ("12,5", "12.5"),
        (" 1 500 ", 1500),
        ("1\u00a0500,75", "1500.75"),
        ("0,125", "0.125"),
        ("12,50", "12.5"),
        ("1e3", 1000),
        ("-0.25", "-0.25"),
    ],
)
def test_numbers_keep_exact_values(value, expected):
    cleaned, errors = only({"budget": value})
    assert errors == []
    assert cleaned == {"budget": expected}
    assert type(cleaned["budget"]) is type(expected)


@pytest.mark.parametrize(
    "value",
    [True, "twelve", "1,000", "1,000.5", "1,2,3", "1.2.3", "nan", "Infinity", 1e20, [1], {"a": 1}, "0.00000000001"],
)
def test_non_numbers_are_refused_for_number_fields(value):
    cleaned, errors = only({"budget": value})
    assert cleaned == {}
    assert [(e["field"], e["code"]) for e in errors] == [("custom.budget", "invalid_type")]
    assert "Budget" in errors[0]["message"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False), ("yes", True), ("No", False), ("on", True), ("1", True), (0, False), ("да", True)],
)
def test_booleans_accept_form_spellings(value, expected):
    assert check_custom({"consent": value}, DEFINITIONS) == ({"consent": expected}, [])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-31", "2024-05-31"),
        (dt.date(2024, 5, 31), "2024-05-31"),
        (dt.datetime(2024, 5, 31, 23, 30), "2024-05-31"),
        ("31.05.2024", "2024-05-31"),
        ("1.5.2024", "2024-05-01"),
        ("2024-05-31T23:30:00Z", "2024-05-31"),
        ("2024-05-31T23:30:00+03:00", "2024-05-31"),
    ],
)
def test_dates_become_iso(value, expected):
    assert only({"meeting": value}) == ({"meeting": expected}, [])


@pytest.mark.parametrize("value", ["2024-02-30", "31/05/2024", "tomorrow", 20240531, "32.01.2024"])
def test_invalid_dates_are_refused(value):
    _, errors = only({"meeting": value})
    assert errors[0]["code"] == "invalid_type"
    assert "2024-05-31" in errors[0]["message"]


def test_select_takes_the_options_own_spelling():
    assert only({"size": "11-50"}) == ({"size": "11-50"}, [])
    assert only({"topics": ["crm", " reports "]}) == ({"topics": ["CRM", "Reports"]}, [])


def test_select_refuses_a_value_that_is_not_an_option_listing_the_options():
    _, errors = only({"size": "huge"})
    assert errors == [
        {
            "field": "custom.size",
            "code": "invalid_option",
            "message": "'Company size' must be one of: '1-10', '11-50', '51+'.",
        }
    ]


def test_multiselect_reads_a_single_string_and_comma_separated_text():
    assert only({"topics": "Email, SMS"}) == ({"topics": ["Email, SMS"]}, [])
    assert only({"topics": "CRM; Reports, crm"}) == ({"topics": ["CRM", "Reports"]}, [])
    _, errors = only({"topics": ["CRM", "Fax"]})
    assert errors[0]["code"] == "invalid_option"
    assert "'Fax' is not an option" in errors[0]["message"]


def test_text_is_stripped_and_numbers_become_text():
    assert only({"referrer": "  Bob  "}) == ({"referrer": "Bob"}, [])
    assert only({"referrer": 42}) == ({"referrer": "42"}, [])
    assert only({"referrer": ["x"]})[1][0]["code"] == "invalid_type"
    assert only({"referrer": "x" * 2001})[1][0]["code"] == "too_long"


def test_unknown_and_missing_fields_are_named():
    cleaned, errors = check_custom({"colour": "red", "budget": None, "referrer": "  "}, DEFINITIONS)
    assert cleaned == {}
    assert errors == [
        {
            "field": "custom.colour",
            "code": "unknown_field",
            "message": "There is no custom field with the key 'colour'.",
        },
        {"field": "custom.consent", "code": "missing", "message": "'Consent' is required."},
    ]


def test_required_field_with_an_invalid_value_is_reported_once():
    _, errors = check_custom({"consent": "maybe"}, DEFINITIONS)
    assert [(e["field"], e["code"]) for e in errors] == [("custom.consent", "invalid_type")]


json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20) | st.dates()
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


@given(st.dictionaries(st.sampled_from([d["key"] for d in DEFINITIONS]) | st.text(max_size=8), json_values, max_size=8))
def test_custom_values_are_cleaned_or_named_as_errors(values):
    cleaned, errors = check_custom(values, DEFINITIONS)
    keys = {d["key"] for d in DEFINITIONS}
    assert set(cleaned) <= keys & set(values)
    for error in errors:
        assert error["field"].startswith("custom.")
        assert error["code"] in {"unknown_field", "invalid_type", "invalid_option", "missing", "too_long"}
        assert error["message"]
    errored = {e["field"].removeprefix("custom.") for e in errors}
    assert not errored & set(cleaned)
    assert set(values) - keys <= errored
    # cleaning is a fixed point: cleaned values pass again unchanged
    again, _ = check_custom(cleaned, DEFINITIONS)
    assert again == cleaned


# ---------------------------------------------------------------------------------------------------- definitions


def test_good_definitions_pass():
    assert validate_definitions(DEFINITIONS) == []
    assert validate_definitions([]) == []


def test_bad_definitions_name_each_problem():
    errors = validate_definitions(
        [
            {"key": "Budget", "label": "Budget", "type": "number"},
            {"key": "size", "label": "", "type": "select"},
            {"key": "size", "label": "Size 2", "type": "colour"},
            {"key": "note", "label": "Note", "type": "text", "options": ["a"], "hint": "x"},
            {"key": "pick", "label": "Pick", "type": "multiselect", "options": ["A", "a", ""], "required": "yes"},
            "budget",
        ]
    )
    assert [(e["field"], e["code"]) for e in errors] == [
        ("custom_fields.0.key", "invalid_key"),
        ("custom_fields.1.label", "missing"),
        ("custom_fields.1.options", "missing"),
        ("custom_fields.2.key", "duplicate_key"),
        ("custom_fields.2.type", "invalid_type"),
        ("custom_fields.3.hint", "unknown_attribute"),
        ("custom_fields.3.options", "not_allowed"),
        ("custom_fields.4.required", "invalid_type"),
        ("custom_fields.4.options.1", "duplicate_option"),
        ("custom_fields.4.options.2", "invalid_option"),
        ("custom_fields.5", "invalid_type"),
    ]


def test_at_most_a_hundred_definitions():
    definitions = [{"key": f"f{i}", "label": f"F{i}", "type": "text"} for i in range(101)]
    assert [e["code"] for e in validate_definitions(definitions)] == ["too_many"]
    assert validate_definitions(definitions[:100]) == []


@pytest.mark.parametrize("key", ["a", "lead_source_2", "x" * 50])
def test_valid_keys(key):
    assert validate_definitions([{"key": key, "label": "L", "type": "text"}]) == []


@pytest.mark.parametrize("key", ["", "1a", "_a", "a-b", "A", "x" * 51, "ключ", 5, None])
def test_invalid_keys(key):
    assert [e["code"] for e in validate_definitions([{"key": key, "label": "L", "type": "text"}])] == ["invalid_key"]


@given(
    st.lists(
        st.dictionaries(st.sampled_from(["key", "label", "type", "required", "options", "x"]), json_values), max_size=5
    )
)
def test_definition_validator_never_crashes(definitions):
    for error in validate_definitions(definitions):
        assert error["field"].startswith("custom_fields")
        assert error["message"]


@given(st.from_regex(normalize._PLAIN_EMAIL, fullmatch=True))
def test_the_fast_path_for_plain_addresses_agrees_with_email_validator(address):
    from email_validator import EmailNotValidError, validate_email

    try:
        expected = validate_email(address, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        expected = None
    try:
        got = normalize.normalize_email(address)
    except ValueError:
        got = None
    assert got == expected
