"""S3 secret keys sealed at rest.

A bearer token is stored as its hash, but SigV4 needs each S3 secret key itself to check a
signature, so it cannot be hashed. With a sealing key configured (32 random bytes, given from the
environment or from a file outside the data dir) each secret key is stored encrypted with
AES-256-GCM, with its access key id as associated data: a copy of the data dir, a backup or a
metadata dump alone holds no working credential, and a sealed secret moved to another key's row
does not open. Without a sealing key the secrets are stored as they are, in a data dir only its
owner can read (and a PostgreSQL database only pyblob's role can).

A sealed secret is `<key id>:<base64 of nonce and ciphertext>`, the key id being the first bytes of
the sealing key's SHA-256: a store opened with another key is refused at once, by name, instead of
answering SignatureDoesNotMatch to every client.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import SealingKeyError

KEY_BYTES = 32
NONCE_BYTES = 12


def parse_sealing_key(text: str, source: str) -> bytes:
    """The 32 bytes of a sealing key written in base64 (`openssl rand -base64 32`); `source` names
    where it came from in the error."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SealingKeyError(
            f"{source}: the sealing key is not base64 (make one with `openssl rand -base64 32`)"
        ) from None
    if len(key) != KEY_BYTES:
        raise SealingKeyError(f"{source}: the sealing key is {len(key)} bytes, it must be {KEY_BYTES}")
    return key


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"pyblob sealing key\0" + key).hexdigest()[:16]


class SecretSealer:
    """Seals and opens the secret keys of access keys with one sealing key."""

    def __init__(self, key: bytes):
        self.aead = AESGCM(key)
        self.key_id = key_id(key)

    def seal(self, access_key: str, secret: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self.aead.encrypt(nonce, secret.encode(), access_key.encode())
        return f"{self.key_id}:{base64.b64encode(nonce + sealed).decode()}"

    def open(self, access_key: str, sealed: str) -> str:
        given_id, _, blob = sealed.partition(":")
        if given_id != self.key_id:
            raise SealingKeyError(
                f"access key {access_key!r} was sealed with another sealing key (id {given_id}, "
                f"this one is {self.key_id}): set the key it was sealed with"
            )
        raw = base64.b64decode(blob)
        try:
            return self.aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], access_key.encode()).decode()
        except InvalidTag:
            raise SealingKeyError(
                f"the sealed secret of access key {access_key!r} does not open: it was altered"
            ) from None
