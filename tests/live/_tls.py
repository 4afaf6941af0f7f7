"""TLS for the live tier: a test certificate authority, and how a server and its clients use it.

:func:`make_certificates` writes, once per test session, a small CA and a
server certificate it signed for ``127.0.0.1`` and ``localhost`` (IP and DNS
subject alternative names). The servers load the server certificate and key
the way their users do (``--certfile``/``--keyfile``, ``ssl_context=(cert,
key)``...); every client trusts the CA alone and verifies as a browser would:
``CERT_REQUIRED`` and the host name checked against the IP address it dialled.

Werkzeug's ``ssl_context="adhoc"`` makes its own certificate at start-up, for
the name ``*`` only: no client can check it against ``127.0.0.1``. Its clients
pin that certificate instead (fetched from the server once, then loaded as the
only trusted one; verification stays on).
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import timeout

#: The environment variable that tells the launcher (``tests/live/_launch.py``) to serve
#: over TLS: ``CERTFILE:KEYFILE``, or ``adhoc`` (Werkzeug's own certificate).
ENV = "WSGIWS_TEST_TLS"


@dataclass(frozen=True)
class Certificates:
    """The files :func:`make_certificates` wrote."""

    ca: Path
    cert: Path
    key: Path


def make_certificates(directory: Path) -> Certificates:
    """A CA and a server certificate it signed for 127.0.0.1 and localhost, in ``directory``.

    EC P-256 keys: made in milliseconds, and every TLS 1.2/1.3 client accepts them.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)

    def name(common_name: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "wsgiws tests"),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            ]
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_usage = x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("wsgiws test CA"))
        .issuer_name(name("wsgiws test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(ca_usage, critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    files = Certificates(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    files.key.chmod(0o600)
    return files


@dataclass
class TLS:
    """How a live server terminates TLS, and the client context that trusts it.

    ``certificates`` set: the server loads our test certificate. Unset: Werkzeug's
    ``ssl_context="adhoc"``, and the clients pin the certificate the server shows.
    """

    certificates: Certificates | None
    _contexts: dict[str, ssl.SSLContext] = field(default_factory=dict, repr=False)
    #: The adhoc certificate (PEM) the clients pin, once fetched.
    _pinned: str | None = field(default=None, repr=False)

    @property
    def mode(self) -> str:
        """``tls`` (our certificate) or ``adhoc``: part of the server's name and pool key."""
        return "tls" if self.certificates is not None else "adhoc"

    def launcher_env(self) -> str:
        """The value of :data:`ENV` for the launcher."""
        if self.certificates is None:
            return "adhoc"
        return f"{self.certificates.cert}:{self.certificates.key}"

    def gunicorn_args(self) -> list[str]:
        if self.certificates is None:
            raise ValueError("gunicorn has no adhoc certificate")
        return ["--certfile", str(self.certificates.cert), "--keyfile", str(self.certificates.key)]

    def client_context(self, address: tuple[str, int]) -> ssl.SSLContext:
        """The context clients connect with (certificate and host name verified)."""
        context = self._contexts.get("any")
        if context is None:
            context = self._new_context(address)
            self._contexts["any"] = context
        return context

    def threaded_client_context(self, address: tuple[str, int]) -> ssl.SSLContext:
        """The context for a client that reads and writes one SSL socket from two threads
        (the ``websockets`` sync client): TLS 1.2 at most.

        OpenSSL forbids concurrent calls on one SSL object, and CPython's ``ssl`` does not
        serialise them. Under TLS 1.3 the server's session tickets arrive just after the
        handshake, while the client's reader thread is in ``SSL_read`` and its main thread
        writes the HTTP request: about one connection in 300 then never sends its request,
        and hangs (seen against gunicorn-gthread; TLS 1.2, or the single-threaded raw
        client under TLS 1.3, never did in 3000). TLS 1.2 sends nothing after the handshake.
        """
        context = self._contexts.get("tls1.2")
        if context is None:
            context = self._new_context(address)
            context.maximum_version = ssl.TLSVersion.TLSv1_2
            self._contexts["tls1.2"] = context
        return context

    def _new_context(self, address: tuple[str, int]) -> ssl.SSLContext:
        if self.certificates is not None:
            return ssl.create_default_context(cafile=str(self.certificates.ca))
        if self._pinned is None:
            # Raises OSError while the server is not up (the readiness probe retries).
            self._pinned = ssl.get_server_certificate(address, timeout=timeout(10))
        return pinned_context(self._pinned)


def pinned_context(pem: str) -> ssl.SSLContext:
    """A context that trusts only the certificate ``pem``, the one a server showed.

    For Werkzeug's adhoc certificate, made at start-up for the name ``*``: its chain is
    verified (against itself), its name cannot be, so the host name check is off.
    """
    context = ssl.create_default_context(cadata=pem)
    context.check_hostname = False
    assert context.verify_mode == ssl.CERT_REQUIRED
    return context
