"""Standard Webhooks signatures on event deliveries between services (webhook-id/-timestamp/-signature)."""

from __future__ import annotations

from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from services.common.ids import new_id
from services.common.problems import Unauthorized


class DeliverySigner:
    def __init__(self, secret: str) -> None:
        self._webhook = Webhook(secret)

    def headers(self, body: bytes) -> dict[str, str]:
        message_id = f"msg_{new_id().hex}"
        now = datetime.now(UTC)
        return {
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self._webhook.sign(message_id, now, body.decode()),
        }

    def verify(self, body: bytes, headers: dict[str, str]) -> None:
        """Raises Unauthorized for a missing, forged or stale (outside ±5 min) signature."""
        try:
            self._webhook.verify(body, headers, json_parse=False)
        except (WebhookVerificationError, ValueError, UnicodeDecodeError) as exc:
            raise Unauthorized(f"The event delivery signature is not valid: {exc}.") from exc
