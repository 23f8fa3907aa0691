"""Who a dashboard request is, and what it may see.

Sign-in turns a credential into an :class:`Identity` (``identify``); every
request then authorizes through the scheduler's own checks, the ones gRPC
requests with the same credential go through. The credential is a submit
token (a cluster's, or the global one: the viewer sees those clusters' jobs)
or a user token (the viewer sees their own jobs; an admin everyone's); the
identity keeps its hash, which the checks accept in its place.

The session is a signed cookie: the token's hash, an expiry and a random
session id, signed (HMAC-SHA256) with a key kept in the store's metadata, so
every replica sharing the store accepts it. The token itself is never stored.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass

from rainbow import credentials
from rainbow.credentials import TokenHash
from rainbow.errors import Unauthenticated
from rainbow.scheduler import Scheduler
from rainbow.store import Store

SESSION_KEY_META = "web_session_key"
COOKIE = "rainbow_session"
SESSION_SECONDS = 12 * 3600


@dataclass(frozen=True)
class Identity:
    """A signed-in viewer: the credential the scheduler checks, and the session it came with."""

    token: TokenHash
    session: str
    expires: float
    user: str = ""  # the user's name when the credential is a user token


def identify(scheduler: Scheduler, token: str) -> tuple[TokenHash, str] | None:
    """The identity a sign-in credential stands for (its hash, and the user's name for a user token), or None
    when it opens nothing.

    A submit token opens something when it is the global token or the token of
    at least one registered cluster (``Scheduler.token_scope``); a user token
    when it names a user (``Scheduler.whoami``).
    """
    if not token:
        return None
    hashed = TokenHash(credentials.hash_secret(token))
    if scheduler.token_scope(hashed) is not None:
        return hashed, ""
    try:
        return hashed, scheduler.whoami(hashed).user
    except Unauthenticated:
        return None


def visible_clusters(scheduler: Scheduler, token: str) -> list[str]:
    """The registered clusters the credential opens, by the scheduler's own token check."""
    return scheduler.token_scope(token) or []


def viewer_scope(scheduler: Scheduler, identity: Identity) -> tuple[list[str], str | None]:
    """What a signed-in viewer sees: (clusters, the owner whose jobs are shown: None for everyone's).

    A submit token shows the clusters it opens with all their jobs; a user sees every cluster and their own
    jobs (an admin everyone's). A user removed since signing in sees nothing (Unauthenticated).
    """
    if not identity.user:
        return visible_clusters(scheduler, identity.token), None
    principal = scheduler.whoami(identity.token)
    return scheduler.cluster_names, principal.owner_filter


class Sessions:
    """Signs and checks session cookies and the CSRF tokens bound to them."""

    def __init__(self, store: Store, clock=time.time) -> None:
        store.add_meta(SESSION_KEY_META, secrets.token_hex(32))
        key = store.get_meta(SESSION_KEY_META)
        assert key is not None
        self._key = bytes.fromhex(key)
        self._clock = clock

    def _sign(self, data: bytes) -> str:
        return credentials.sign(self._key, data)

    def issue(self, token: TokenHash, user: str = "") -> tuple[str, Identity]:
        """A new session for ``token`` (a user's, when ``user`` is given): (cookie value, identity)."""
        identity = Identity(token, secrets.token_urlsafe(16), self._clock() + SESSION_SECONDS, user)
        payload = json.dumps({"t": str(token), "s": identity.session, "e": identity.expires,
                              **({"u": user} if user else {})}).encode()
        body = base64.urlsafe_b64encode(payload).decode().rstrip("=")
        return f"{body}.{self._sign(body.encode())}", identity

    def check(self, cookie: str | None) -> Identity | None:
        """The identity of a valid, unexpired cookie; None for anything else."""
        if not cookie or cookie.count(".") != 1:
            return None
        body, signature = cookie.split(".")
        if not credentials.signature_matches(self._key, body.encode(), signature):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            identity = Identity(TokenHash(data["t"]), str(data["s"]), float(data["e"]), str(data.get("u", "")))
        except (ValueError, KeyError, TypeError):
            return None
        return identity if identity.expires > self._clock() else None

    def csrf(self, identity: Identity) -> str:
        """The CSRF token of a session: forms that change something must send it back."""
        return self._sign(b"csrf:" + identity.session.encode())

    def check_csrf(self, identity: Identity, presented: str) -> bool:
        return credentials.signature_matches(self._key, b"csrf:" + identity.session.encode(), presented)
