"""OIDC: JWTs signed by an identity provider's key (made here, RS256) as user tokens, over real gRPC."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from test_agent_local import register

from rainbow.client import RainbowClient
from rainbow.errors import InvalidArgument, Unauthenticated
from rainbow.jobspec import simple
from rainbow.oidc import OIDCKeys, OIDCSettings, claim_groups

from conftest import REGISTRATION_SECRET, subprocess_env

ISSUER = "https://idp.example.org/realms/hpc"
AUDIENCE = "rainbow"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks(key: rsa.RSAPrivateKey, kid: str = "site-key") -> dict:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {"keys": [{**public, "kid": kid, "use": "sig", "alg": "RS256"}]}


def token(key: rsa.RSAPrivateKey, kid: str = "site-key", **claims) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "groups": ["physics", "hpc"], "iat": now,
            "exp": now + 300, **claims}
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": kid})


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return new_key()


@pytest.fixture
def jwks_file(tmp_path, key) -> Path:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks(key)))
    return path


@pytest.fixture
def server(server_factory, jwks_file):
    return server_factory(oidc=OIDCSettings(str(jwks_file), ISSUER, AUDIENCE))


def whoami(server, bearer: str):
    with RainbowClient(server.address, user_token=bearer, retries=0) as client:
        return client.whoami()


def test_a_signed_token_names_the_user_and_their_groups(server, key, tmp_path):
    me = whoami(server, token(key))
    assert (me.name, me.groups, me.admin) == ("alice", ("physics", "hpc"), False)
    register(server.address, tmp_path)
    with RainbowClient(server.address, user_token=token(key), retries=0) as client:
        job = client.get_job(client.submit_jobspec(simple(["true"])).jobid)
    assert (job.user, job.group) == ("alice", "physics")


@pytest.mark.parametrize(("claims", "signer", "message"), [
    ({"exp": int(time.time()) - 60}, "site", "has expired"),
    ({}, "other", "signature does not verify"),
    ({"iss": "https://evil.example.org"}, "site", f"not from issuer '{ISSUER}'"),
    ({"aud": "another-service"}, "site", f"not for audience '{AUDIENCE}'"),
    ({"sub": None}, "site", "no 'sub' claim"),
])
def test_bad_tokens_are_unauthenticated(server, key, claims, signer, message):
    signing = key if signer == "site" else new_key()
    bad = token(signing, **{k: v for k, v in claims.items() if v is not None})
    if claims.get("sub", "") is None:
        body = jwt.decode(bad, options={"verify_signature": False})
        del body["sub"]
        bad = jwt.encode(body, key, algorithm="RS256", headers={"kid": "site-key"})
    with pytest.raises(Unauthenticated, match=message) as caught:
        whoami(server, bad)
    assert bad not in str(caught.value)


def test_a_token_naming_an_unknown_key_or_not_a_jwt_is_unauthenticated(server, key):
    with pytest.raises(Unauthenticated, match="kid"):
        whoami(server, token(key, kid="rotated-away"))
    with pytest.raises(Unauthenticated, match="neither a rainbow token nor a readable JWT"):
        whoami(server, "not.a.jwt")


def test_an_admin_of_the_same_name_makes_the_token_an_admins(server, key):
    with RainbowClient(server.address) as operator:
        operator.add_user("alice", admin=True, secret=REGISTRATION_SECRET)
    assert whoami(server, token(key)).admin


def test_claim_names_are_configurable(server_factory, jwks_file, key):
    server = server_factory(oidc=OIDCSettings(str(jwks_file), ISSUER, AUDIENCE, "preferred_username", "roles"))
    me = whoami(server, token(key, preferred_username="a.smith", roles="chem bio"))
    assert (me.name, me.groups) == ("a.smith", ("chem", "bio"))


def test_keys_are_fetched_from_a_url(server_factory, key):
    body = json.dumps(jwks(key)).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            return None

    provider = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=provider.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{provider.server_address[1]}/certs"
        server = server_factory(oidc=OIDCSettings(url, ISSUER, AUDIENCE))
        assert whoami(server, token(key)).name == "alice"
    finally:
        provider.shutdown()
        provider.server_close()


def test_settings_are_checked_at_start(tmp_path):
    with pytest.raises(InvalidArgument, match="together"):
        OIDCKeys(OIDCSettings(str(tmp_path / "jwks.json"), "", AUDIENCE))
    with pytest.raises(InvalidArgument, match="cannot read"):
        OIDCKeys(OIDCSettings(str(tmp_path / "missing.json"), ISSUER, AUDIENCE))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InvalidArgument, match="not a JWKS document"):
        OIDCKeys(OIDCSettings(str(tmp_path / "bad.json"), ISSUER, AUDIENCE))


def test_groups_claims_come_as_lists_or_strings():
    assert claim_groups(["a", "b"]) == ("a", "b")
    assert claim_groups("a, b c") == ("a", "b", "c")
    assert claim_groups(None) == () and claim_groups(7) == ()


def test_the_server_refuses_incomplete_oidc_settings_in_one_line(tmp_path, jwks_file):
    db = tmp_path / "rainbow.db"
    result = subprocess.run(
        [sys.executable, "-m", "rainbow", "server", "--host", "127.0.0.1:0", "--db", str(db),
         "--oidc-jwks", str(jwks_file), "--oidc-issuer", ISSUER],
        capture_output=True, text=True, timeout=60, env=subprocess_env(),
    )
    assert result.returncode == 1
    assert result.stderr.strip() == ("rainbow: error: OIDC needs --oidc-jwks, --oidc-issuer and --oidc-audience "
                                     "together")
    assert not db.exists()


def test_a_server_without_the_oidc_extra_starts_and_oidc_names_the_extra():
    """PyJWT is the oidc extra: the server, the scheduler and the CLI import without it, and asking for OIDC
    says which extra to install."""
    code = (
        "import sys; sys.modules['jwt'] = None\n"
        "import rainbow.server.serve, rainbow.scheduler, rainbow.cli\n"
        "from rainbow.errors import FailedPrecondition\n"
        "from rainbow.oidc import OIDCKeys, OIDCSettings\n"
        "try:\n"
        "    OIDCKeys(OIDCSettings('keys.json', 'https://issuer', 'rainbow'))\n"
        "except FailedPrecondition as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env=subprocess_env())
    assert result.returncode == 0, result.stderr
    assert "rainbow-scheduler[oidc]" in result.stdout
