"""API keys: random 256-bit secrets, stored only as SHA-256 digests.

A fast digest is right here because the secrets are random and long: nothing can be guessed from
the digest, and a slow password hash would cap the request rate of every agent poll.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid as uuidlib

__all__ = ["hash_key", "keys_match", "new_key", "new_uuid"]


def new_key() -> str:
    """A fresh 256-bit key as 64 hex characters (the length WHIDS keys have)."""
    return secrets.token_hex(32)


def new_uuid() -> str:
    return str(uuidlib.uuid4())


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def keys_match(key: str, key_hash: str) -> bool:
    """Constant-time comparison of a presented key with a stored digest."""
    return hmac.compare_digest(hash_key(key), key_hash)
