"""A deal's amount and its line items: one currency for all, and an amount that defaults to the lines' total
(quantity x price x (1 - discount_percent / 100), summed, rounded half up to the currency's minor unit)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal

from pydantic import ValidationError

from services.common.money import Money, minor_units
from services.common.problems import InvalidField, InvalidFields
from services.deals.schemas import LineItemIn

HUNDRED = Decimal(100)


def line_total(item: LineItemIn) -> Decimal:
    return item.quantity * item.price.amount * (HUNDRED - item.discount_percent) / HUNDRED


def total(items: Sequence[LineItemIn]) -> Money:
    """The lines' total in their currency (the caller checked they share one)."""
    currency = items[0].price.currency
    exact = sum((line_total(item) for item in items), Decimal(0))
    rounded = exact.quantize(Decimal(1).scaleb(-minor_units(currency)), rounding=ROUND_HALF_UP)
    try:
        return Money(amount=rounded, currency=currency)
    except ValidationError as exc:
        raise InvalidField("line_items", "The line items add up to more than an amount can hold.",
                           "amount_too_large") from exc


def check_currencies(amount: Money | None, items: Sequence[LineItemIn], *, amount_field: bool = False) -> None:
    """Every line in the deal's currency (the amount's, else the first line's). `amount_field`: the amount is what
    changed, so a mismatch is the amount's fault, not the lines'."""
    currency = amount.currency if amount is not None else items[0].price.currency if items else None
    wrong = [i for i, item in enumerate(items) if item.price.currency != currency]
    if not wrong:
        return
    if amount_field:
        raise InvalidField("amount.currency", f"The deal's line items are in {items[0].price.currency}; the amount "
                           "must be in the same currency.", "currency_mismatch")
    raise InvalidFields([
        {"field": f"line_items[{i}].price.currency", "code": "currency_mismatch",
         "message": f"Every line item is in the deal's currency, {currency}."}
        for i in wrong
    ])


def stored_items(items: Sequence[LineItemIn]) -> list[dict[str, object]]:
    """Line items as the jsonb column keeps them: decimals as strings."""
    return [item.model_dump(mode="json") for item in items]
