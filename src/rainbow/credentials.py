"""Secrets and tokens: generation, hashing and constant-time checks.

Every credential rainbow hands out is 256 random bits from ``secrets``, so a
plain SHA-256 of it is a safe thing to store: there is nothing to brute-force.
Only hashes are persisted; the plain value exists in the reply that hands it out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

TOKEN_BYTES = 32


def new_secret() -> str:
    """A fresh URL-safe credential with 256 bits of entropy.

    Never starts with ``-``, so it can follow a flag on a command line
    (``--delete-secret VALUE``) without being read as an option.
    """
    while True:
        value = secrets.token_urlsafe(TOKEN_BYTES)
        if not value.startswith("-"):
            return value


class TokenHash(str):
    """A submit token already hashed: what a dashboard session keeps instead of the token itself.

    Checks treat it as the token it is the hash of, so a signed-in viewer goes
    through exactly the authorization a gRPC request with that token does.
    Only the dashboard makes one (from a signed cookie); the wire carries plain strings.
    """


def hash_secret(value: str) -> str:
    if isinstance(value, TokenHash):
        return str.__str__(value)
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def check_secret(value: str | None, stored_hash: str | None) -> bool:
    """Constant-time comparison of a presented credential with a stored hash."""
    if not value or not stored_hash:
        return False
    return hmac.compare_digest(hash_secret(value), stored_hash)


def sign(key: bytes, message: bytes) -> str:
    """An HMAC-SHA256 signature of ``message`` (URL-safe base64, unpadded): sessions and CSRF tokens."""
    return base64.urlsafe_b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode().rstrip("=")


def signature_matches(key: bytes, message: bytes, signature: str) -> bool:
    """Whether ``signature`` is ``message``'s, compared in constant time."""
    return bool(signature) and hmac.compare_digest(sign(key, message), signature)
