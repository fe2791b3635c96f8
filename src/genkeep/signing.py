"""Short HMAC signatures, for owner cookies and for signed links to reference images: one way to make and check
them.

A signature is the first 24 bytes of an HMAC-SHA256, URL-safe base64 without padding (32 characters). Checking
compares bytes: whatever a client sends (non-ASCII text included) is simply a wrong signature, never an error.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


class Signer:
    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def for_purpose(cls, secret: str, purpose: str) -> Signer:
        """A signer whose signatures are worth nothing for any other purpose made from the same secret."""
        return cls(hashlib.sha256(f"genkeep-{purpose}:".encode() + secret.encode()).digest())

    def sign(self, message: str) -> str:
        digest = hmac.new(self._key, message.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:24]).decode().rstrip("=")

    def verify(self, message: str, signature: str) -> bool:
        return hmac.compare_digest(self.sign(message).encode(), signature.encode("utf-8", "surrogateescape"))
