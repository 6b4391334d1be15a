"""Failures the gateway expects and may explain to the client.

Anything raised in a resolver that is not a `PublicError` is masked as "Unexpected error." and logged.
"""

from __future__ import annotations


class PublicError(Exception):
    """An expected failure whose message is written for the API client and safe to show verbatim."""


class InvalidArgument(PublicError):
    """A field argument GraphQL's type system accepted but the gateway cannot use (too big, malformed)."""


class NotAllowed(PublicError):
    """The caller's role may not read this (a rep asking for the workspace's sources); the message says why."""
