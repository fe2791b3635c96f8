"""Signed owner cookies for the dataset's owners, minted with the server's own signer so the server accepts them."""

from __future__ import annotations

from genkeep.web.owner import OwnerCookies


def cookie_for(secret: str, owner: str) -> str:
    """The genkeep_owner cookie value the server would have set for this owner id."""
    cookies = OwnerCookies(secret)
    value = cookies.value_for(owner)
    # If signing ever changes shape, fail here rather than benchmark a stream of fresh-owner requests.
    if cookies.verify(value) != owner:
        raise RuntimeError("OwnerCookies no longer verifies the cookies the benchmark mints")
    return value


def cookies_for(secret: str, owners: list[str]) -> dict[str, str]:
    return {owner: cookie_for(secret, owner) for owner in owners}
