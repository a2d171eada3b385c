"""A throw-away TLS identity for 127.0.0.1, so the bench's fake model can serve `wss://` as Azure does.

The media host is never told to skip verification: it trusts this certificate the way any OpenSSL
client trusts a private CA, through `SSL_CERT_FILE` (which `ssl.create_default_context()`, and so
aiohttp's default client context, loads instead of the system bundle).
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class LoopbackCert:
    cert_file: Path  # PEM: what a client puts in SSL_CERT_FILE
    key_file: Path

    @classmethod
    def create(cls, folder: Path, *, days: int = 1) -> LoopbackCert:
        """A self-signed certificate for IP:127.0.0.1 (P-256: made in a millisecond), written to `folder`."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, LOOPBACK)])
        start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)  # clock skew
        public = key.public_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=days))
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.IPv4Address(LOOPBACK))]), critical=False
            )
            # its own trust anchor: a CA that signed itself, with the key ids strict verifiers ask for
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(key, hashes.SHA256())
        )
        made = cls(folder / "loopback-cert.pem", folder / "loopback-key.pem")
        made.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        made.key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return made

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context
