"""TLS and mutual TLS with certificates made at run time (openssl)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import grpc
import pytest

from rainbow.protos import rainbow_pb2, rainbow_pb2_grpc

from conftest import REGISTRATION_SECRET, example

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    key, cert = directory / f"{name}.key", directory / f"{name}.pem"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
             "-keyout", str(key), "-out", str(cert), cwd=directory)
    return key, cert


def make_cert(directory: Path, name: str, ca: tuple[Path, Path], server: bool) -> tuple[Path, Path]:
    key, csr, cert = directory / f"{name}.key", directory / f"{name}.csr", directory / f"{name}.pem"
    ext = directory / f"{name}.ext"
    usage = "serverAuth" if server else "clientAuth"
    ext.write_text(f"subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage={usage}\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(csr),
             cwd=directory)
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[1]), "-CAkey", str(ca[0]), "-CAcreateserial",
             "-days", "2", "-extfile", str(ext), "-out", str(cert), cwd=directory)
    return key, cert


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pki")
    ca = make_ca(directory, "ca")
    other_ca = make_ca(directory, "other-ca")
    return {
        "ca": ca,
        "server": make_cert(directory, "server", ca, server=True),
        "client": make_cert(directory, "client", ca, server=False),
        "stranger": make_cert(directory, "stranger", other_ca, server=False),
    }


def register(channel) -> rainbow_pb2.RegisterResponse:
    stub = rainbow_pb2_grpc.RainbowSchedulerStub(channel)
    return stub.Register(
        rainbow_pb2.RegisterRequest(name="keebler", secret=REGISTRATION_SECRET, nodes=example("cluster-nodes.json")),
        timeout=10,
    )


def secure(address: str, ca: Path, client: tuple[Path, Path] | None = None) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=client[0].read_bytes() if client else None,
        certificate_chain=client[1].read_bytes() if client else None,
    )
    return grpc.secure_channel(address, credentials)


def refused(channel) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as err:
        register(channel)
    channel.close()
    return err.value.code()


def test_tls_refuses_plaintext(server_factory, pki):
    server = server_factory(cert=str(pki["server"][1]), key=str(pki["server"][0]))
    assert refused(grpc.insecure_channel(server.address)) == grpc.StatusCode.UNAVAILABLE
    with secure(server.address, pki["ca"][1]) as channel:
        assert register(channel).status == rainbow_pb2.RegisterResponse.REGISTER_SUCCESS


def test_mutual_tls(server_factory, pki):
    server = server_factory(cert=str(pki["server"][1]), key=str(pki["server"][0]), ca_cert=str(pki["ca"][1]))
    address, ca = server.address, pki["ca"][1]
    assert refused(grpc.insecure_channel(address)) == grpc.StatusCode.UNAVAILABLE
    assert refused(secure(address, ca)) == grpc.StatusCode.UNAVAILABLE
    assert refused(secure(address, ca, pki["stranger"])) == grpc.StatusCode.UNAVAILABLE
    with secure(address, ca, pki["client"]) as channel:
        assert register(channel).status == rainbow_pb2.RegisterResponse.REGISTER_SUCCESS


def test_tls_needs_cert_and_key(server_factory, pki):
    from rainbow.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="--cert and --key"):
        server_factory(cert=str(pki["server"][1]))
    with pytest.raises(InvalidArgument, match="cannot read"):
        server_factory(cert="/nonexistent.pem", key=str(pki["server"][0]))


def test_a_tls_client_of_a_plaintext_server_is_told_so(server_factory, pki):
    from rainbow.client import RainbowClient
    from rainbow.errors import Unavailable

    server = server_factory()
    client = RainbowClient(server.address, ca_cert=pki["ca"][1], timeout=10, retries=0)
    with client, pytest.raises(Unavailable) as err:
        client.satisfy(example("jobspec-constraint.yaml"))
    assert str(err.value).startswith(f"cannot reach the rainbow server at {server.address}: the TLS handshake "
                                     "failed: the server likely speaks plaintext (connect without --ssl/--ca-cert)")


def test_a_client_with_a_certificate_the_server_does_not_trust_is_told_so(server_factory, pki):
    from rainbow.client import RainbowClient
    from rainbow.errors import Unavailable

    server = server_factory(cert=str(pki["server"][1]), key=str(pki["server"][0]), ca_cert=str(pki["ca"][1]))
    key, cert = pki["stranger"]
    client = RainbowClient(server.address, ca_cert=pki["ca"][1], cert=cert, key=key, timeout=10, retries=0)
    with client, pytest.raises(Unavailable) as err:
        client.satisfy(example("jobspec-constraint.yaml"))
    assert "it likely does not trust this client certificate" in str(err.value)


def _https(port: int, ca: Path, client: tuple[Path, Path] | None = None, **request) -> tuple[int, list[str]]:
    import http.client
    import ssl

    context = ssl.create_default_context(cafile=str(ca))
    if client:
        context.load_cert_chain(str(client[1]), str(client[0]))
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        connection.request(**{"method": "GET", "url": "/signin", **request})
        response = connection.getresponse()
        response.read()
        return response.status, response.headers.get_all("Set-Cookie") or []
    finally:
        connection.close()


def test_the_dashboard_speaks_tls_as_grpc_does(server_factory, pki):
    pytest.importorskip("aiohttp")
    import ssl
    import urllib.parse

    server = server_factory(cert=str(pki["server"][1]), key=str(pki["server"][0]), web="127.0.0.1:0",
                            global_token="tls-global-token")
    port = server.server.web_port
    assert _https(port, pki["ca"][1])[0] == 200
    form = urllib.parse.urlencode({"token": "tls-global-token", "next": "/"})
    status, cookies = _https(port, pki["ca"][1], method="POST", url="/signin", body=form,
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 303
    cookie = next(c for c in cookies if c.startswith("rainbow_session="))
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie

    mutual = server_factory(cert=str(pki["server"][1]), key=str(pki["server"][0]), ca_cert=str(pki["ca"][1]),
                            web="127.0.0.1:0")
    port = mutual.server.web_port
    for client in (None, pki["stranger"]):
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _https(port, pki["ca"][1], client)
    assert _https(port, pki["ca"][1], pki["client"])[0] == 200
