"""Money is a decimal string and an ISO 4217 currency: floats, negatives, too many places and unknown codes are
refused naming the field; every valid amount comes back as the same decimal, as a string."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from services.common.money import CURRENCIES, MAX_INTEGER_DIGITS, Money, minor_units


class Deal(BaseModel):
    budget: Money


def errors(raw: object) -> list[tuple[tuple, str]]:
    with pytest.raises(ValidationError) as caught:
        Deal.model_validate({"budget": raw})
    return [(e["loc"], e["type"]) for e in caught.value.errors()]


LARGEST = Decimal(10) ** MAX_INTEGER_DIGITS - 1


@st.composite
def valid_money(draw) -> tuple[Decimal, str]:
    currency = draw(st.sampled_from(sorted(CURRENCIES)))
    places = minor_units(currency)
    amount = draw(st.decimals(min_value=0, max_value=LARGEST, places=places, allow_nan=False, allow_infinity=False))
    return amount, currency


@given(valid_money())
def test_an_amount_round_trips_as_the_same_decimal_string(money):
    amount, currency = money
    parsed = Money(amount=format(amount, "f"), currency=currency.lower())
    assert parsed.amount == amount
    assert parsed.currency == currency
    data = json.loads(parsed.model_dump_json())
    places = minor_units(currency)
    # Always a string, always with the currency's decimal places.
    assert data == {"amount": f"{amount:.{places}f}", "currency": currency}
    assert Money.model_validate_json(parsed.model_dump_json()) == parsed
    assert Money.model_validate(data) == parsed


def parse(text: str) -> tuple[Money | None, list]:
    try:
        return Money(amount=text, currency="USD"), []
    except ValidationError as exc:
        return None, exc.errors()


@given(st.text(max_size=30))
def test_any_text_is_either_an_amount_or_a_refusal_naming_amount(text):
    money, refused = parse(text)
    if money is None:
        assert [e["loc"] for e in refused] == [("amount",)]
    else:
        assert money.amount == Decimal(text.strip())


@given(st.from_regex(r"\A-?[0-9]{1,18}(\.[0-9]{0,5})?\Z"))
def test_which_amounts_are_taken_matches_a_digit_by_digit_model(text):
    # The model: not negative, at most 15 digits once leading zeros go, at most 2 places once trailing zeros go.
    whole, point, fraction = text.removeprefix("-").partition(".")
    expected = (
        not text.startswith("-") and len(whole.lstrip("0")) <= 15 and len(fraction.rstrip("0")) <= 2
        and not (point and not fraction)
    )
    money, _ = parse(text)
    assert (money is not None) == expected
    if money is not None:
        assert str(money.amount) == f"{Decimal(text):.2f}"


def test_a_whole_number_is_accepted_and_given_cents():
    money = Money.model_validate({"amount": 15000, "currency": " usd "})
    assert money.model_dump(mode="json") == {"amount": "15000.00", "currency": "USD"}
    assert Money(amount="15000.1", currency="EUR").model_dump(mode="json")["amount"] == "15000.10"
    # Trailing zeros past the currency's places are not extra precision.
    assert Money(amount="1500.000", currency="JPY").model_dump(mode="json")["amount"] == "1500"


def test_a_float_is_refused_with_a_message_saying_why():
    with pytest.raises(ValidationError) as caught:
        Deal.model_validate({"budget": {"amount": 15000.5, "currency": "USD"}})
    [error] = caught.value.errors()
    assert error["loc"] == ("budget", "amount")
    assert error["type"] == "float_amount"
    assert "string" in error["msg"]
    assert "15000.00" in error["msg"]


@pytest.mark.parametrize(("amount", "code"), [
    ("-5", "negative_amount"),
    ("-0.01", "negative_amount"),
    ("1e3", "amount_format"),
    ("12,50", "amount_format"),
    ("", "amount_format"),
    ("NaN", "amount_format"),
    ("١٢٣", "amount_format"),  # Arabic-Indic digits: Decimal would take them, we do not
    ("+5", "amount_format"),
    (True, "amount_type"),
    (None, "amount_type"),
    (-5, "negative_amount"),
    ("1" * (MAX_INTEGER_DIGITS + 1), "amount_too_large"),
    (10 ** MAX_INTEGER_DIGITS, "amount_too_large"),
    ("0" * 100, "amount_too_large"),
])
def test_bad_amounts_are_refused_naming_amount(amount, code):
    assert errors({"amount": amount, "currency": "USD"}) == [(("budget", "amount"), code)]


def test_the_largest_amount_has_fifteen_integer_digits():
    assert Money(amount="9" * MAX_INTEGER_DIGITS + ".99", currency="USD").amount == Decimal("999999999999999.99")
    assert Money(amount="0" * 20 + "5", currency="USD").amount == Decimal("5.00")


@pytest.mark.parametrize(("amount", "currency", "ok"), [
    ("10.01", "USD", True),
    ("10.001", "USD", False),
    ("10", "JPY", True),
    ("10.5", "JPY", False),
    ("1.234", "KWD", True),
    ("1.2345", "KWD", False),
    ("0.001", "BHD", True),
])
def test_decimal_places_follow_the_currency(amount, currency, ok):
    if ok:
        assert Money(amount=amount, currency=currency).amount == Decimal(amount)
    else:
        assert errors({"amount": amount, "currency": currency}) == [(("budget", "amount"), "decimal_places")]


@pytest.mark.parametrize("currency", ["XYZ", "usdd", "", "XTS", "HRK", 840])
def test_unknown_currencies_are_refused_naming_currency(currency):
    assert [loc for loc, _ in errors({"amount": "1", "currency": currency})] == [("budget", "currency")]


def test_unknown_fields_are_refused_and_both_fields_are_required():
    assert errors({"amount": "1", "currency": "USD", "rate": "2"}) == [(("budget", "rate"), "extra_forbidden")]
    assert {loc for loc, _ in errors({})} == {("budget", "amount"), ("budget", "currency")}


def test_the_api_schema_says_amount_is_a_string():
    schema = Money.model_json_schema()
    assert schema["properties"]["amount"]["type"] == "string"
    assert schema["required"] == ["amount", "currency"]
