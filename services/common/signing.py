"""Standard Webhooks signatures on event deliveries between services (webhook-id/-timestamp/-signature)."""

from __future__ import annotations

import hmac
import time
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

from services.common.ids import new_id
from services.common.problems import Unauthorized


class DeliverySigner:
    def __init__(self, secret: str, tolerance_seconds: int = 300) -> None:
        self._webhook = Webhook(secret)
        self._tolerance = tolerance_seconds

    def headers(self, body: bytes, at: datetime | None = None) -> dict[str, str]:
        """The signature headers for `body`, timestamped now (or `at`, for tests of stale deliveries)."""
        message_id = f"msg_{new_id().hex}"
        now = at or datetime.now(UTC)
        return {
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self._webhook.sign(message_id, now, body.decode()),
        }

    def verify(self, body: bytes, headers: dict[str, str]) -> None:
        """Raises Unauthorized for a missing, forged or stale (outside ±tolerance) signature."""
        # Checked here rather than by Webhook.verify, whose window is a fixed five minutes: ours is
        # VORONKA_EVENTS_TOLERANCE_SECONDS, the replay window the operator chose.
        message_id = headers.get("webhook-id")
        stamp = headers.get("webhook-timestamp")
        signatures = headers.get("webhook-signature")
        if not (message_id and stamp and signatures):
            raise Unauthorized("The event delivery is not signed (webhook-id, -timestamp and -signature).")
        try:
            sent_at = int(stamp)
        except ValueError as exc:
            raise Unauthorized("The event delivery's webhook-timestamp is not a Unix time.") from exc
        skew = time.time() - sent_at
        if abs(skew) > self._tolerance:
            when = "old" if skew > 0 else "ahead of our clock"
            raise Unauthorized(
                f"The event delivery signature is stale: its timestamp is {abs(skew):.0f} s {when} "
                f"(tolerance {self._tolerance} s)."
            )
        try:
            expected = self._webhook.sign(message_id, datetime.fromtimestamp(sent_at, UTC), body.decode())
        except UnicodeDecodeError as exc:
            raise Unauthorized("The event delivery is not UTF-8.") from exc
        # Several space-separated signatures are allowed (secret rotation); one matching v1 is enough.
        if not any(hmac.compare_digest(candidate.encode(), expected.encode()) for candidate in signatures.split(" ")):
            raise Unauthorized("The event delivery signature is not valid.")
