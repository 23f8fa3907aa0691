"""OIDC: an identity provider's signing keys and what a token it signed must say.

A server started with ``--oidc-jwks FILE_OR_URL --oidc-issuer ISS --oidc-audience AUD`` accepts the provider's
signed JWTs as user tokens. This module loads the provider's public keys (a JWKS document, from a file or
fetched from a URL and cached) and finds the one a token names; ``rainbow.scheduler.authorization`` checks
the token with it (PyJWT: signature, expiry, issuer, audience). No cryptography is written here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from rainbow.errors import FailedPrecondition, InvalidArgument, Unauthenticated

if TYPE_CHECKING:
    import jwt

# Asymmetric algorithms only: a provider signs with its private key, rainbow holds only public keys.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
# How long keys fetched from a URL are trusted before they are fetched again (providers rotate keys).
JWKS_CACHE_SECONDS = 300


@dataclass(frozen=True)
class OIDCSettings:
    jwks: str
    issuer: str
    audience: str
    user_claim: str = "sub"
    groups_claim: str = "groups"


def pyjwt() -> ModuleType:
    """PyJWT, which only a server checking OIDC tokens needs (the ``oidc`` extra)."""
    try:
        import jwt
    except ImportError:
        raise FailedPrecondition("OIDC needs the oidc extra (PyJWT is not installed): "
                                 "pip install 'rainbow-scheduler[oidc]'", field="oidc-jwks") from None
    return jwt


def looks_like_jwt(token: str) -> bool:
    """A JWT has three dot-separated parts; rainbow's own tokens have no dot."""
    return token.count(".") == 2


def claim_groups(value: Any) -> tuple[str, ...]:
    """A groups claim as a tuple: a list of names, or one string of names separated by spaces or commas."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(part for part in value.replace(",", " ").split() if part)
    if isinstance(value, (list, tuple)):
        return tuple(str(item) for item in value if str(item))
    return ()


class OIDCKeys:
    """The provider's public keys, and the settings a token is checked against."""

    def __init__(self, settings: OIDCSettings) -> None:
        if not (settings.jwks and settings.issuer and settings.audience):
            raise InvalidArgument("OIDC needs --oidc-jwks, --oidc-issuer and --oidc-audience together", field="oidc")
        self.settings = settings
        self.jwt = jwt = pyjwt()
        self._client: jwt.PyJWKClient | None = None
        self._keys: jwt.PyJWKSet | None = None
        if settings.jwks.startswith(("https://", "http://")):
            self._client = jwt.PyJWKClient(settings.jwks, cache_keys=True, lifespan=JWKS_CACHE_SECONDS)
            return
        try:
            self._keys = jwt.PyJWKSet.from_json(Path(settings.jwks).read_text())
        except OSError as exc:
            raise InvalidArgument(f"--oidc-jwks: cannot read {settings.jwks}: {exc.strerror}", field="oidc-jwks") \
                from None
        except (jwt.PyJWTError, ValueError) as exc:
            raise InvalidArgument(f"--oidc-jwks: {settings.jwks} is not a JWKS document ({exc})",
                                  field="oidc-jwks") from None

    def signing_key(self, token: str) -> Any:
        """The public key the token says signed it; Unauthenticated when there is none such."""
        jwt = self.jwt
        try:
            if self._client is not None:
                return self._client.get_signing_key_from_jwt(token).key
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWKClientError as exc:
            raise Unauthenticated(f"the OIDC token's signing key cannot be found ({exc})",
                                  field="authorization") from None
        except jwt.PyJWTError:
            raise Unauthenticated("the user token is neither a rainbow token nor a readable JWT",
                                  field="authorization") from None
        assert self._keys is not None
        for key in self._keys.keys:
            if kid is None or key.key_id == kid:
                return key.key
        raise Unauthenticated("the OIDC token's signing key (kid) is not among the provider's keys",
                              field="authorization")
