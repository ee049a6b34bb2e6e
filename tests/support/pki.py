# Copyright (c) avatar_mgmt.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Test certificates, made with ``cryptography``.

* a test CA and a server certificate for ``localhost`` / ``127.0.0.1`` with the
  extensions strict X.509 verification wants (basicConstraints, keyUsage,
  subject/authority key identifiers, extendedKeyUsage serverAuth);
* optionally a self-signed RSA certificate whose key signs registry tokens (a
  Distribution registry in token mode trusts it through ``auth.token.rootcertbundle``).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PEM = serialization.Encoding.PEM


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(**kwargs):
    flags = dict.fromkeys(
        (
            'digital_signature',
            'content_commitment',
            'key_encipherment',
            'data_encipherment',
            'key_agreement',
            'key_cert_sign',
            'crl_sign',
            'encipher_only',
            'decipher_only',
        ),
        False,
    )
    flags.update(kwargs)
    return x509.KeyUsage(**flags)


def _validity(days):
    now = datetime.datetime.now(datetime.UTC)
    return now - datetime.timedelta(minutes=10), now + datetime.timedelta(days=days)


def _builder(subject, issuer, public_key, days):
    start, end = _validity(days)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
    )


def make_ca(common_name, days=2):
    """Return ``(key, cert)`` of a self-signed EC CA that may sign leaf certificates only."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    cert = (
        _builder(name, name, key.public_key(), days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(digital_signature=True, key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_server_cert(ca_key, ca_cert, dns_names=('localhost',), ip_addresses=('127.0.0.1',), days=2):
    """Return ``(key, cert)`` of an EC server certificate for those names, signed by the CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.DNSName(name) for name in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(address)) for address in ip_addresses]
    common_name = (list(dns_names) + list(ip_addresses))[0]
    cert = (
        _builder(_name(common_name), ca_cert.subject, key.public_key(), days)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def make_signing_cert(common_name, days=2):
    """Return ``(key, cert)``: a self-signed RSA certificate for signing (RS256) tokens."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = _name(common_name)
    cert = (
        _builder(name, name, key.public_key(), days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def pem_key(key):
    return key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def write_file(path, data, mode=0o644):
    with open(path, 'wb') as handle:
        handle.write(data)
    os.chmod(path, mode)
    return path


class TestPKI:
    """Files written into ``directory``: ``ca.crt``, ``server.crt`` (leaf + CA) and ``server.key``;
    with ``token_signer`` also ``token-signer.crt``.

    The files are 0644: a registry in a container reads them through a bind mount.
    ``signer_key`` (RSA), ``signer_cert`` and ``signer_cert_der`` are kept in memory for signing tokens.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, directory, token_signer=True, ca_name='avatar_mgmt.ops test CA'):
        self.directory = str(directory)
        ca_key, ca_cert = make_ca(ca_name)
        server_key, server_cert = make_server_cert(ca_key, ca_cert)
        self.ca_path = write_file(self._path('ca.crt'), ca_cert.public_bytes(PEM))
        # The server presents its chain; clients trust only the CA.
        self.cert_path = write_file(self._path('server.crt'), server_cert.public_bytes(PEM) + ca_cert.public_bytes(PEM))
        self.key_path = write_file(self._path('server.key'), pem_key(server_key))
        self.signer_key = self.signer_cert = self.signer_cert_der = self.signer_cert_path = None
        if token_signer:
            self.signer_key, self.signer_cert = make_signing_cert('avatar_mgmt.ops token signer')
            self.signer_cert_path = write_file(self._path('token-signer.crt'), self.signer_cert.public_bytes(PEM))
            self.signer_cert_der = self.signer_cert.public_bytes(serialization.Encoding.DER)

    def _path(self, name):
        return os.path.join(self.directory, name)

    def server_context(self):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_path, self.key_path)
        return context
