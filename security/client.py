"""The client's address, by one rule for login throttling and the audit log."""

from __future__ import annotations

import ipaddress

from django.conf import settings


def client_ip(request) -> str | None:
    """The client's address: REMOTE_ADDR, or behind TRUSTED_PROXY_COUNT proxies the address the outermost one saw.

    X-Forwarded-For is only read when proxies are declared, since any client
    can send the header: trusting it would let an attacker pick the address
    his failures count against. Used by axes and by the audit log alike.
    """
    proxies = settings.TRUSTED_PROXY_COUNT
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    address = request.META.get("REMOTE_ADDR")
    if proxies > 0 and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",")[-64:] if hop.strip()]
        if len(hops) >= proxies:
            address = hops[-proxies]
    try:
        return str(ipaddress.ip_address(address)) if address else None
    except ValueError:  # a proxy that forwards garbage: no address rather than a failed write
        return None
