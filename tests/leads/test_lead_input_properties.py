"""Whatever a client sends as a lead, it is either accepted cleanly or refused naming the bad fields."""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from services.common.problems import validation_errors
from services.leads.intake import CaptureSettings, InvalidLead, validate_lead
from services.leads.schemas import LeadCreate

FIELDS = ["name", "email", "phone", "company", "source", "owner_id"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=5,
)


def http_errors(exc: ValidationError) -> list[dict[str, str]]:
    """The errors as the API reports them: FastAPI puts the body's fields under `body`, so a field that
    happens to be called `header` or `query` is still named as itself."""
    return validation_errors([{**error, "loc": ("body", *error["loc"])} for error in exc.errors()])


bodies = st.dictionaries(st.sampled_from([*FIELDS, "fax", "Name"]) | st.text(max_size=8), json_values, max_size=7)


@given(bodies)
def test_any_body_is_accepted_or_refused_naming_its_fields(body):
    try:
        lead = validate_lead(body, CaptureSettings(default_region="RU"))
    except InvalidLead as exc:
        errors = exc.errors
        assert errors
        for error in errors:
            field = error["field"]
            named = [key for key in [*body, "name"] if field == key or field.startswith((f"{key}.", f"{key}["))]
            assert named, error
            assert error["message"]
        return
    assert set(body) <= set(FIELDS)
    assert lead.name is not None
    assert 1 <= len(lead.name) <= 200
    assert lead.name == lead.name.strip()
    if lead.email is not None:
        assert lead.email == lead.email.lower()
    if lead.phone is not None:
        assert lead.phone.startswith("+")
        assert lead.phone[1:].isdigit()


@given(
    st.text(alphabet=string.ascii_letters + " ", min_size=1, max_size=30).filter(str.strip),
    st.emails(),
)
def test_valid_leads_keep_their_name_and_lower_case_their_email(name, email):
    lead = LeadCreate(name=name, email=email)
    assert lead.name == name.strip()
    assert lead.email is not None
    assert lead.email == lead.email.lower()


TEXT_FIELDS = ["name", "email", "phone", "company", "source"]


@given(
    st.sampled_from(TEXT_FIELDS),
    st.text(max_size=20),
    st.text(max_size=20),
)
def test_a_nul_character_in_any_text_field_is_refused_naming_that_field(field, before, after):
    body = {"name": "Ivan Petrov", field: f"{before}\x00{after}"}
    try:
        LeadCreate.model_validate(body)
    except ValidationError as exc:
        errors = http_errors(exc)
        assert [e["field"] for e in errors] == [field]
        assert errors[0]["code"] == "nul_character"
        return
    raise AssertionError(f"accepted a NUL in {field}")
