"""Field mapping: from what a form or a marketing tool posts to the fields of a lead."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.leads.intake import CaptureSettings, validate_lead
from services.leads.mapping import (
    MappingError,
    apply_mapping,
    parse_body,
    quote_key,
    resolve,
    validate_mapping,
)

FORM = "application/x-www-form-urlencoded"

# ---------------------------------------------------------------------------------------------------- bodies


def test_json_object_body_is_parsed():
    assert parse_body("application/json", b'{"email": "a@b.c", "n": 1}') == {"email": "a@b.c", "n": 1}
    assert parse_body("Application/JSON; charset=utf-8", b'{"a": "\xd0\x96"}') == {"a": "Ж"}
    assert parse_body("application/json", b'\xef\xbb\xbf{"a": 1}') == {"a": 1}
    assert parse_body("application/vnd.api+json", b"{}") == {}
    assert parse_body("application/json; charset=windows-1251", '{"a": "Анна"}'.encode("cp1251")) == {"a": "Анна"}


@pytest.mark.parametrize(
    ("content_type", "body", "code"),
    [
        ("application/json", b"{", "invalid_json"),
        ("application/json", b"", "invalid_json"),
        ("application/json", b"[1, 2]", "not_an_object"),
        ("application/json", b'"text"', "not_an_object"),
        ("application/json", b'{"a": NaN}', "invalid_json"),
        ("application/json", b'{"a": "\xff"}', "invalid_encoding"),
        ("application/json; charset=klingon", b"{}", "unsupported_charset"),
        ("application/json; charset=base64", b"e30=", "unsupported_charset"),
        (f"{FORM}; charset=zlib", b"a=1", "unsupported_charset"),
        (f"{FORM}; charset=idna", b"a=" + b"x" * 70 + "\u00e9".encode(), "invalid_encoding"),
        ("text/plain", b"hello", "unsupported_media_type"),
        ("", b"{}", "unsupported_media_type"),
        ("multipart/form-data; boundary=x", b"--x--", "unsupported_media_type"),
        (FORM, b"name=%FF", "invalid_encoding"),
        (FORM, b"a=1&" * 1001, "too_many_fields"),
    ],
)
def test_unreadable_body_is_refused_naming_the_body(content_type, body, code):
    with pytest.raises(MappingError) as info:
        parse_body(content_type, body)
    [error] = info.value.errors
    assert error["field"] == "body"
    assert error["code"] == code
    assert error["message"]


def test_deeply_nested_json_is_refused_not_crashing():
    with pytest.raises(MappingError) as info:
        parse_body("application/json", b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    assert info.value.errors[0]["code"] == "invalid_json"


def test_form_body_keeps_keys_flat_and_repeated_keys_become_lists():
    body = b"Name=Ann+Lee&utm_source=google&tags=a&tags=b&empty=&contact.email=x%40y.z"
    assert parse_body(f"{FORM}; charset=UTF-8", body) == {
        "Name": "Ann Lee",
        "utm_source": "google",
        "tags": ["a", "b"],
        "empty": "",
        "contact.email": "x@y.z",
    }


def test_form_body_in_a_declared_charset():
    body = urlencode({"Имя": "Анна"}, encoding="cp1251").encode()
    assert parse_body(f"{FORM}; charset=windows-1251", body) == {"Имя": "Анна"}
    # a sender that skipped the percent-escaping of non-ASCII text
    assert parse_body(FORM, "Имя=Анна".encode()) == {"Имя": "Анна"}


@given(st.dictionaries(st.text(), st.text(), max_size=10))
def test_form_encoding_round_trips(form):
    assert parse_body(FORM, urlencode(form).encode()) == form


@given(st.dictionaries(st.text(max_size=5), st.lists(st.text(max_size=5), min_size=1, max_size=3), max_size=5))
def test_repeated_form_keys_round_trip_as_lists(form):
    parsed = parse_body(FORM, urlencode(form, doseq=True).encode())
    assert parsed == {key: values[0] if len(values) == 1 else values for key, values in form.items()}


json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=6), json_values, max_size=6)


@given(json_objects)
def test_any_json_object_round_trips(payload):
    assert parse_body("application/json", json.dumps(payload).encode()) == payload


content_types = st.sampled_from(["application/json", FORM, "text/csv"]).flatmap(
    lambda media: st.just(media) | st.text(max_size=12).map(lambda charset: f"{media}; charset={charset}")
) | st.sampled_from([f"{FORM}; charset=cp1251", f"{FORM}; charset=idna", "application/json; charset=utf-16"])


@given(st.binary(max_size=200), content_types)
def test_parse_body_raises_only_mapping_error(body, content_type):
    try:
        parsed = parse_body(content_type, body)
    except MappingError as exc:
        errors = exc.errors
        assert errors
    else:
        assert isinstance(parsed, dict)


# ---------------------------------------------------------------------------------------------------- paths

PAYLOAD = {
    "contact": {"email": "ann@example.com", "phones": ["+1 202 555 0143", "+44 20 7946 0958"]},
    "answers": [
        {"field": {"ref": "name"}, "text": "Ann"},
        {"field": {"ref": "email", "id": 7}, "email": "ann@work.com"},
        {"field": {"ref": "email"}, "email": "second@work.com"},
    ],
    "fields": [{"name": "email", "value": "hs@example.com"}, {"name": "a]b", "value": "odd"}],
    "utm.source": "dotted key",
    "we`ird": {"x[1]": "quoted"},
    "0": "zero key",
    "flags": [True, 1.0],
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("contact.email", "ann@example.com"),
        ("  contact.email ", "ann@example.com"),
        ("contact.phones.1", "+44 20 7946 0958"),
        ("contact.phones.2", None),
        ("contact.phones.x", None),
        ("contact.missing", None),
        ("contact.email.deeper", None),
        ("answers.0.text", "Ann"),
        ("answers[field.ref=email].email", "ann@work.com"),
        ("answers[field.id=7].email", "ann@work.com"),
        ("answers[field.ref=phone].email", None),
        ("answers[field.ref=email]", PAYLOAD["answers"][1]),
        ("fields[name=email].value", "hs@example.com"),
        ("fields[name=`a]b`].value", "odd"),
        ("contact[name=email].value", None),
        ("`utm.source`", "dotted key"),
        ("utm.source", None),
        ("`we``ird`.`x[1]`", "quoted"),
        ("0", "zero key"),
        ("flags[x=1]", None),
    ],
)
def test_resolve_finds_values_by_path(path, expected):
    assert resolve(PAYLOAD, path) == expected


@pytest.mark.parametrize(
    "path",
    ["", "  ", "a..b", ".a", "a.", "a[", "a[b]", "a[=x]", "a[b=c", "a]b", "a`b`", "`a", "a.`b`c", "x" * 501, "[a=b]"],
)
def test_unparseable_paths_are_refused(path):
    with pytest.raises(MappingError) as info:
        resolve(PAYLOAD, path)
    assert info.value.errors[0]["code"] == "invalid_path"


@given(json_values, st.text(max_size=30))
def test_resolve_raises_only_mapping_error(payload, path):
    try:
        resolve(payload, path)
    except MappingError as exc:
        codes = [e["code"] for e in exc.errors]
        assert codes == ["invalid_path"]


path_keys = st.text(min_size=0, max_size=8)


@given(st.lists(path_keys, min_size=1, max_size=5), json_scalars.filter(lambda v: v is not None))
def test_a_value_placed_at_a_path_is_found_by_that_path(keys, value):
    payload: object = value
    for key in reversed(keys):
        payload = {key: payload}
    assert resolve(payload, ".".join(quote_key(key) for key in keys)) == value


@given(st.lists(st.text(max_size=4), min_size=1, max_size=4), st.integers(0, 5), st.text(max_size=6))
def test_a_value_placed_in_a_list_is_found_by_index_and_by_filter(keys, position, marker):
    items = [{"id": f"other{i}", "v": i} for i in range(position)] + [{"id": marker, "v": "hit"}]
    payload = {"outer": {"items": items}}
    assert resolve(payload, f"outer.items.{position}.v") == "hit"
    if all(item["id"] != marker for item in items[:-1]):
        assert resolve(payload, f"outer.items[id={quote_key(marker)}].v") == "hit"


# ---------------------------------------------------------------------------------------------------- mapping


def test_tilda_form_needs_no_mapping():
    body = (
        b"Name=%D0%90%D0%BD%D0%BD%D0%B0+%D0%9F%D0%B5%D1%82%D1%80%D0%BE%D0%B2%D0%B0&Email=Anna%40Example.ru"
        b"&Phone=%2B7+%28916%29+123-45-67&Textarea=%D0%9F%D0%B5%D1%80%D0%B5%D0%B7%D0%B2%D0%BE%D0%BD%D0%B8%D1%82%D0%B5"
        b"&tranid=4711234%3A1234567&formid=form123456&utm_source=yandex&utm_medium=cpc&utm_campaign=spring"
        b"&COOKIES=_ym_uid%3D1"
    )
    payload = parse_body(f"{FORM}; charset=UTF-8", body)
    assert apply_mapping(payload, {}) == {
        "name": "Анна Петрова",
        "email": "Anna@Example.ru",
        "phone": "+7 (916) 123-45-67",
        "utm": {"source": "yandex", "medium": "cpc", "campaign": "spring"},
    }
    # the Tilda "Textarea" field is not a common name: the source maps it to notes
    raw = apply_mapping(payload, {"notes": "Textarea"})
    assert raw["notes"] == "Перезвоните"
    lead = validate_lead(raw, CaptureSettings(default_region="RU"))
    assert (lead.name, lead.email, lead.phone) == ("Анна Петрова", "anna@example.ru", "+79161234567")


TYPEFORM = {
    "event_id": "01HXYZ",
    "event_type": "form_response",
    "form_response": {
        "form_id": "lT4Z3j",
        "hidden": {"utm_source": "newsletter", "utm_campaign": "may"},
        "answers": [
            {"type": "email", "email": "ann@example.com", "field": {"id": "a1", "ref": "email", "type": "email"}},
            {"type": "text", "text": "Ann Lee", "field": {"id": "a2", "ref": "name", "type": "short_text"}},
            {
                "type": "phone_number",
                "phone_number": "+79161234567",
                "field": {"id": "a3", "ref": "phone", "type": "phone_number"},
            },
            {
                "type": "choices",
                "choices": {"labels": ["CRM", "Reports"]},
                "field": {"id": "a4", "ref": "interests", "type": "multiple_choice"},
            },
            {"type": "number", "number": 25, "field": {"id": "a5", "ref": "seats", "type": "number"}},
        ],
    },
}
TYPEFORM_MAPPING = {
    "email": "form_response.answers[field.ref=email].email",
    "name": "form_response.answers[field.ref=name].text",
    "phone": "form_response.answers[field.ref=phone].phone_number",
    "tags": "form_response.answers[field.ref=interests].choices.labels",
    "custom.seats": "form_response.answers[field.ref=seats].number",
    "utm.source": "form_response.hidden.utm_source",
    "utm.campaign": "form_response.hidden.utm_campaign",
}


def test_typeform_webhook_with_a_mapping():
    assert validate_mapping(TYPEFORM_MAPPING) == []
    assert apply_mapping(TYPEFORM, TYPEFORM_MAPPING) == {
        "email": "ann@example.com",
        "name": "Ann Lee",
        "phone": "+79161234567",
        "tags": ["CRM", "Reports"],
        "custom": {"seats": 25},
        "utm": {"source": "newsletter", "campaign": "may"},
    }


HUBSPOT = {
    "submittedAt": 1717171717000,
    "fields": [
        {"name": "email", "value": "ann@example.com"},
        {"name": "firstname", "value": "Ann"},
        {"name": "lastname", "value": "Lee"},
        {"name": "company", "value": "Acme"},
        {"name": "jobtitle", "value": "CTO"},
        {"name": "message", "value": "Call me after 5"},
    ],
    "context": {"pageUri": "https://example.com/pricing", "pageName": "Pricing"},
}
HUBSPOT_MAPPING = {
    "email": "fields[name=email].value",
    "first_name": "fields[name=firstname].value",
    "last_name": "fields[name=lastname].value",
    "company": "fields[name=company].value",
    "position": "fields[name=jobtitle].value",
    "notes": ["fields[name=message].value", "context.pageUri"],
}


def test_hubspot_style_submission_with_a_mapping():
    assert apply_mapping(HUBSPOT, HUBSPOT_MAPPING) == {
        "email": "ann@example.com",
        "name": "Ann Lee",
        "company": "Acme",
        "position": "CTO",
        "notes": "Call me after 5\nhttps://example.com/pricing",
    }


def test_plain_json_form_is_read_by_common_names_case_insensitively():
    payload = {
        "Full Name": "Ann Lee",
        "E-mail": "ann@example.com",
        "PHONE_NUMBER": 79161234567,
        "Organization": "Acme",
        "Job Title": "CTO",
        "comment": "hi",
        "UTM_Source": "google",
        "utm_term": "crm",
        "tags": ["a", "b"],
        "other": "ignored",
    }
    assert apply_mapping(payload, {}) == {
        "name": "Ann Lee",
        "email": "ann@example.com",
        "phone": "79161234567",
        "company": "Acme",
        "position": "CTO",
        "notes": "hi",
        "tags": ["a", "b"],
        "utm": {"source": "google", "term": "crm"},
    }


def test_first_and_last_name_combine_unless_a_name_is_given():
    assert apply_mapping({"firstname": "Ann", "last_name": "Lee"}, {}) == {"name": "Ann Lee"}
    assert apply_mapping({"first_name": "Ann"}, {}) == {"name": "Ann"}
    assert apply_mapping({"name": "Ann L.", "first_name": "Ann", "last_name": "Lee"}, {}) == {"name": "Ann L."}
    # a mapped name part switches off guessing of the others
    assert apply_mapping({"name": "Guess", "given": "Ann"}, {"first_name": "given"}) == {"name": "Ann"}


def test_mapping_wins_over_detection_and_lists_of_paths_combine():
    payload = {"email": "guess@x.com", "work": {"email": ""}, "home": {"email": "home@x.com"}, "a": "Ann", "b": "Lee"}
    assert apply_mapping(payload, {"email": ["work.email", "home.email"], "name": ["a", "missing", "b"]}) == {
        "email": "home@x.com",
        "name": "Ann Lee",
    }


def test_values_become_text():
    payload = {"n": 5, "f": 1.5, "big": 79161234567.0, "t": True, "f2": False, "l": ["", None, "x", "y"]}
    raw = apply_mapping(
        payload, {"company": "n", "position": "f", "phone": "big", "utm.source": "t", "utm.medium": "f2", "name": "l"}
    )
    assert raw == {
        "company": "5",
        "position": "1.5",
        "phone": "79161234567",
        "name": "x",
        "utm": {"source": "true", "medium": "false"},
    }


def test_notes_keep_every_element_of_a_list():
    assert apply_mapping({"q": ["red", "green"]}, {"notes": "q"}) == {"notes": "red, green"}


def test_tags_are_gathered_from_lists_and_comma_separated_text():
    payload = {"t1": "vip, webinar;  spring ", "t2": ["x", 1, None, ["nested"]], "t3": ""}
    assert apply_mapping(payload, {"tags": ["t1", "t2", "t3"]}) == {
        "tags": ["vip", "webinar", "spring", "x", "1", "nested"]
    }


def test_custom_fields_keep_their_json_types():
    payload = {"seats": 25, "ok": True, "picks": ["a", "b"], "when": "2024-05-31", "blank": " "}
    raw = apply_mapping(
        payload,
        {
            "custom.seats": "seats",
            "custom.ok": "ok",
            "custom.picks": "picks",
            "custom.when": "when",
            "custom.b": "blank",
        },
    )
    assert raw == {"custom": {"seats": 25, "ok": True, "picks": ["a", "b"], "when": "2024-05-31"}}


def test_empty_strings_count_as_absent():
    assert apply_mapping({"email": "  ", "name": "", "phone": None}, {}) == {}


def test_an_object_where_a_value_is_expected_names_the_field():
    with pytest.raises(MappingError) as info:
        apply_mapping({"contact": {"email": "a@b.c"}, "c": {"x": 1}}, {"email": "contact", "custom.x": "c"})
    assert [(e["field"], e["code"]) for e in info.value.errors] == [
        ("email", "not_a_value"),
        ("custom.x", "not_a_value"),
    ]
    assert "contact.email" in info.value.errors[0]["message"]


def test_detection_skips_objects_rather_than_refusing_the_lead():
    assert apply_mapping({"name": {"first": "Ann"}, "email": "a@b.c", "tags": [{"id": 1}]}, {}) == {"email": "a@b.c"}


def test_invalid_mapping_is_refused_by_apply_and_named_by_validate():
    mapping = {
        "fax": "x",
        "email": "a..b",
        "phone": ["ok", "bad["],
        "name": [],
        "notes": 5,
        "custom.Budget": "x",
        "custom.budget": "x",
        "utm.source": "utm_source",
    }
    errors = validate_mapping(mapping)
    assert [(e["field"], e["code"]) for e in errors] == [
        ("mapping.fax", "unknown_target"),
        ("mapping.email", "invalid_path"),
        ("mapping.phone", "invalid_path"),
        ("mapping.name", "invalid_path"),
        ("mapping.notes", "invalid_path"),
        ("mapping.custom.Budget", "unknown_target"),
    ]
    assert all(e["message"] for e in errors)
    with pytest.raises(MappingError) as info:
        apply_mapping({}, mapping)
    assert info.value.errors == errors
    assert validate_mapping([]) == [
        {
            "field": "mapping",
            "code": "invalid_type",
            "message": 'The mapping must be an object: {"lead field": "path"}.',
        }
    ]


def test_flat_mapping_names_keys_not_paths():
    payload = {"Contact.Email": "a@b.c", "Who": "Ann"}
    assert apply_mapping(payload, {"email": "contact.email", "name": "WHO"}, flat=True) == {
        "email": "a@b.c",
        "name": "Ann",
    }
    assert validate_mapping({"email": "a..b["}, flat=True) == []
    assert validate_mapping({"email": " "}, flat=True)[0]["code"] == "invalid_path"


targets = st.sampled_from(
    [
        *("name", "first_name", "last_name", "email", "phone", "company", "position", "notes", "tags"),
        *("utm.source", "custom.budget", "custom.Bad", "fax"),
    ]
)
mappings = st.dictionaries(
    targets | st.text(max_size=8), st.text(max_size=20) | st.lists(st.text(max_size=20), max_size=3)
)
lead_keys = st.sampled_from(["name", "Email", "phone", "tags", "utm_source", "FirstName", "comment", "x", "a"])


@given(st.dictionaries(lead_keys | st.text(max_size=6), json_values, max_size=8), mappings)
def test_apply_mapping_raises_only_mapping_error(payload, mapping):
    try:
        raw = apply_mapping(payload, mapping)
    except MappingError as exc:
        errors = exc.errors
        assert errors
        for error in errors:
            assert error["field"]
            assert error["code"] in {"unknown_target", "invalid_path", "not_a_value"}
            assert error["message"]
    else:
        assert set(raw) <= {"name", "email", "phone", "company", "position", "notes", "tags", "utm", "custom"}
        for key, value in raw.items():
            if key == "tags":
                assert value
                assert all(isinstance(tag, str) and tag.strip() for tag in value)
            elif key in ("utm", "custom"):
                assert value
            else:
                assert isinstance(value, str)
                assert value.strip()


@given(st.dictionaries(lead_keys, json_scalars, max_size=8))
def test_flat_payload_of_scalars_always_maps(payload):
    raw = apply_mapping(payload, {})
    assert all(v for v in raw.values())
