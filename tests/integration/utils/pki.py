# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Certificates for the integration tests, made with ``cryptography``.

* a test CA and a server certificate for ``localhost`` / ``127.0.0.1`` (the
  registries, the token issuer and the paging front all use it);
* a self-signed RSA certificate whose key signs the registry tokens (the token
  registry trusts it through ``auth.token.rootcertbundle``).
"""

from __future__ import annotations

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _key_usage(**kwargs):
    flags = dict.fromkeys(('digital_signature', 'content_commitment', 'key_encipherment', 'data_encipherment',
                           'key_agreement', 'key_cert_sign', 'crl_sign', 'encipher_only', 'decipher_only'), False)
    flags.update(kwargs)
    return x509.KeyUsage(**flags)


def _write(path, data, mode=0o644):
    with open(path, 'wb') as handle:
        handle.write(data)
    os.chmod(path, mode)
    return path


def _pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class TestPKI:
    """Files written into ``directory``: ``ca.crt``, ``server.crt`` (leaf + CA), ``server.key``,
    ``token-signer.crt`` and ``token-signer.key``.

    ``signer_key`` (RSA) and ``signer_cert`` are kept in memory for signing tokens.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, directory):
        self.directory = str(directory)
        now = datetime.datetime.now(datetime.UTC)
        start = now - datetime.timedelta(minutes=10)
        end = now + datetime.timedelta(days=2)

        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'avatar_mgmt.ops integration CA')])
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name).issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(digital_signature=True, key_cert_sign=True, crl_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        server_key = ec.generate_private_key(ec.SECP256R1())
        server_cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'localhost')]))
            .issuer_name(ca_name)
            .public_key(server_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName('localhost'),
                x509.IPAddress(ipaddress.ip_address('127.0.0.1')),
            ]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        signer_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        signer_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'avatar_mgmt.ops token signer')])
        signer_cert = (
            x509.CertificateBuilder()
            .subject_name(signer_name).issuer_name(signer_name)
            .public_key(signer_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(digital_signature=True), critical=True)
            .sign(signer_key, hashes.SHA256())
        )

        pem = serialization.Encoding.PEM
        self.ca_path = _write(os.path.join(self.directory, 'ca.crt'), ca_cert.public_bytes(pem))
        # The server presents its chain; clients trust only the CA.
        self.cert_path = _write(os.path.join(self.directory, 'server.crt'),
                                server_cert.public_bytes(pem) + ca_cert.public_bytes(pem))
        # 0644: the registry in the container reads it through a bind mount.
        self.key_path = _write(os.path.join(self.directory, 'server.key'), _pem_key(server_key))
        self.signer_cert_path = _write(os.path.join(self.directory, 'token-signer.crt'),
                                       signer_cert.public_bytes(pem))
        self.signer_key = signer_key
        self.signer_cert = signer_cert
        self.signer_cert_der = signer_cert.public_bytes(serialization.Encoding.DER)

    def server_context(self):
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_path, self.key_path)
        return context
