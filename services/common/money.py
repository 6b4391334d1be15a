"""Money: a decimal amount (a JSON string such as "15000.00") in an ISO 4217 currency; never a float.

Every service that handles amounts (a lead's budget, a deal's value) takes and gives them as `Money`, so an
amount is checked the same way everywhere and no cent is lost to binary floating point.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, WithJsonSchema, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

# ISO 4217 List One: the active codes of national and shared currencies (XCG replaced ANG in 2025). Fund codes
# (BOV, CLF, UYW...), precious metals (XAU...), XDR, XTS (testing) and XXX (no currency) are left out: nobody
# budgets a deal in them.
CURRENCIES: frozenset[str] = frozenset({
    "AED", "AFN", "ALL", "AMD", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BGN", "BHD", "BIF", "BMD",
    "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHF", "CLP", "CNY", "COP", "CRC", "CUP",
    "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP",
    "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD",
    "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "LYD",
    "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MYR", "MZN", "NAD", "NGN",
    "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB",
    "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL",
    "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS", "VED", "VES",
    "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG",
})

# Decimal places of the currencies whose minor unit is not the cent (ISO 4217's "minor unit" column).
MINOR_UNITS: dict[str, int] = {
    **dict.fromkeys(
        ("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF",
         "XPF"),
        0,
    ),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}
DEFAULT_MINOR_UNITS = 2
# Up to 999,999,999,999,999 of a currency: enough for any deal, and exact in a numeric column and in JSON.
MAX_INTEGER_DIGITS = 15

_AMOUNT = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)
_AMOUNT_PATTERN = rf"^[0-9]{{1,{MAX_INTEGER_DIGITS}}}(\.[0-9]+)?$"
# Longer text than this cannot be a valid amount (leading zeros aside); refused before parsing it.
_MAX_AMOUNT_TEXT = 64


def minor_units(currency: str) -> int:
    """How many decimal places amounts in `currency` have: 2, or 0 (JPY), 3 (KWD)..."""
    return MINOR_UNITS.get(currency, DEFAULT_MINOR_UNITS)


def _amount(value: Any) -> Decimal:
    if isinstance(value, float):
        raise PydanticCustomError(
            "float_amount",
            'Send the amount as a string, e.g. "15000.00" (or a whole number): a float can lose cents.',
        )
    if isinstance(value, bool):
        raise PydanticCustomError("amount_type", 'The amount is a decimal string, e.g. "15000.00".')
    if isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise PydanticCustomError("amount_type", 'The amount is a decimal string, e.g. "15000.00".')
        number = value
    elif isinstance(value, str):
        text = value.strip()
        if len(text) > _MAX_AMOUNT_TEXT:
            raise PydanticCustomError("amount_too_large", "The amount has too many digits.")
        if text.startswith("-") and _AMOUNT.fullmatch(text[1:]):
            raise PydanticCustomError("negative_amount", "The amount cannot be negative.")
        if not _AMOUNT.fullmatch(text):
            raise PydanticCustomError(
                "amount_format", 'Write the amount with digits and at most one decimal point, e.g. "15000.00".'
            )
        try:
            number = Decimal(text)
        except InvalidOperation as exc:  # the pattern lets only digits through; kept for safety
            raise PydanticCustomError("amount_format", "The amount is not a decimal number.") from exc
    else:
        raise PydanticCustomError("amount_type", 'The amount is a decimal string, e.g. "15000.00".')
    if number < 0:
        raise PydanticCustomError("negative_amount", "The amount cannot be negative.")
    if number and number.adjusted() >= MAX_INTEGER_DIGITS:
        raise PydanticCustomError(
            "amount_too_large", "The amount has more than {digits} digits before the decimal point.",
            {"digits": MAX_INTEGER_DIGITS},
        )
    return abs(number)  # abs: "-0" is zero


def _currency(value: Any) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("currency_type", "The currency is an ISO 4217 code such as USD, EUR or RUB.")
    code = value.strip().upper()
    if code not in CURRENCIES:
        raise PydanticCustomError(
            "unknown_currency", "'{code}' is not an active ISO 4217 currency code (e.g. USD, EUR, RUB).",
            {"code": value[:20]},
        )
    return code


Amount = Annotated[
    Decimal,
    BeforeValidator(_amount),
    WithJsonSchema({"type": "string", "pattern": _AMOUNT_PATTERN, "examples": ["15000.00"]}),
]
Currency = Annotated[
    str,
    BeforeValidator(_currency),
    WithJsonSchema({"type": "string", "pattern": "^[A-Za-z]{3}$", "examples": ["USD"]}),
]


class Money(BaseModel):
    """{"amount": "15000.00", "currency": "USD"}. The amount is given the currency's decimal places."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    amount: Amount = Field(
        description='A decimal string, e.g. "15000.00" (a whole number is accepted, a float is refused): not '
        "negative, at most 15 digits before the point and the currency's decimal places after it"
    )
    currency: Currency = Field(description="An active ISO 4217 code, e.g. USD; upper-cased")

    @model_validator(mode="after")
    def _in_minor_units(self) -> Money:
        places = minor_units(self.currency)
        exact = self.amount.quantize(Decimal(1).scaleb(-places))
        if exact != self.amount:
            detail = f"{self.currency} amounts have at most {places} decimal places."
            raise ValidationError.from_exception_data(
                "Money",
                [InitErrorDetails(
                    type=PydanticCustomError("decimal_places", detail), loc=("amount",), input=str(self.amount)
                )],
            )
        # Stored and shown with the currency's places: "15000" USD is "15000.00", "1500.0" JPY is "1500".
        object.__setattr__(self, "amount", exact)
        return self
