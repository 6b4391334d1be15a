"""Money in GraphQL: a decimal amount as a string with its ISO 4217 currency, never a Float, so no cent is lost
on the way (the services' `services.common.money` checks it and says what is wrong)."""

from __future__ import annotations

import strawberry

from gateway.clients.qualification import MoneyRecord


@strawberry.type(description='An amount in a currency, e.g. {amount: "15000.00", currency: "USD"}.')
class Money:
    amount: str = strawberry.field(
        description="A decimal string with the currency's decimal places: \"15000.00\" USD, \"1500\" JPY."
    )
    currency: str = strawberry.field(description="An active ISO 4217 code, upper case, e.g. USD.")

    @classmethod
    def from_record(cls, record: MoneyRecord) -> Money:
        return cls(amount=record.amount, currency=record.currency)


@strawberry.input(description='An amount in a currency, e.g. {amount: "15000.00", currency: "USD"}.')
class MoneyInput:
    amount: str = strawberry.field(
        description=(
            'A decimal string: digits and at most one decimal point ("15000", "15000.50"). Not negative, at most '
            "15 digits before the point and the currency's decimal places after it (2 for most, 0 for JPY, 3 for "
            "KWD)."
        )
    )
    currency: str = strawberry.field(description="An active ISO 4217 code, e.g. USD (any case).")

    def as_json(self) -> dict[str, str]:
        """As the services take it: the amount stays the string the client wrote."""
        return {"amount": self.amount, "currency": self.currency}
