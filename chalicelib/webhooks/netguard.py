"""SSRF guard for customer-supplied URLs (webhooks).

A URL is accepted only if it is ``https``, has no user info or fragment, uses port 443 or
a port from 1024 up, and its host resolves only to public addresses: if ANY address of the
host is loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7), link-local
(169.254/16 with the 169.254.169.254 metadata service, fe80::/10), shared CGNAT
(100.64/10), multicast, unspecified, reserved, documentation/benchmark space (including
IPv6's 2001:db8::/32 and 3fff::/20), or an IPv6
form of those (IPv4-mapped ``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96``; 6to4 and Teredo
are refused outright), the URL is refused.

``allow_local`` (operator setting SMSGW_WEBHOOK_ALLOW_LOCAL, for the local stack only)
additionally allows plain ``http`` and loopback targets (127.0.0.0/8, ::1). Link-local,
metadata and private addresses stay refused even then.

:func:`check` returns the addresses it checked: the caller connects to one of those, not
to the name again, so a DNS answer that changes between the check and the connection
(DNS rebinding) cannot redirect the request.

A host name that does not resolve and one that resolves to a non-public address get the
same answer, which never shows an address: otherwise the error would tell a caller which
internal names exist.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048
DEFAULT_PORTS = {"https": 443, "http": 80}
LOWEST_HIGH_PORT = 1024  # below it only the scheme's default port (443; 80 for local http)
_HOSTNAME = re.compile(
    r"^(?=.{1,253}\.?$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$"
)
_FORBIDDEN_CHARS = re.compile(r"[\s\\\x00-\x1f\x7f]")

# Refused whatever ``ipaddress`` says about them (belt and braces over is_global).
_BLOCKED = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "::ffff:0:0/96",
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "3fff::/20",  # documentation (RFC 9637): Python 3.11 counts it as global
        "2002::/16",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    )
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refused(ValueError):
    """The URL may not be a webhook target; the message says why, for the customer."""


class UnsafeUrl(Refused):
    """The URL is refused by policy: a permanent answer, retrying will not help."""


class Unresolvable(Refused):
    """The host name does not resolve (now): may be transient."""


def _not_public(host: str) -> str:
    return f"{host} does not resolve to a public address; webhooks only go to public addresses"


@dataclass(frozen=True)
class Target:
    """A checked URL and the addresses its host resolved to (all of them allowed)."""

    url: str
    scheme: str
    host: str  # lower-case name or IP literal, without brackets
    port: int
    path: str  # path and query, as sent in the request line
    addresses: tuple  # the checked IP addresses, as strings, in resolver order

    @property
    def is_ip_literal(self) -> bool:
        return _ip(self.host) is not None

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone (fe80::1%eth0)
    except ValueError:
        return None


def refusal(address: str | IPAddress, allow_local: bool = False) -> str | None:
    """Why ``address`` may not be a webhook target, or None when it may."""
    ip = address if isinstance(address, IPAddress) else _ip(str(address))
    if ip is None:
        return f"{address} is not an IP address"
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            inner = refusal(ip.ipv4_mapped, allow_local)
            return f"{ip} is IPv4-mapped: {inner}" if inner else None
        if ip in _NAT64:
            inner = refusal(ipaddress.IPv4Address(ip.packed[-4:]), allow_local)
            return f"{ip} is NAT64-translated: {inner}" if inner else None
        if ip.sixtofour is not None or ip.teredo is not None:
            return f"{ip} is a 6to4/Teredo tunnel address"
    if ip.is_loopback:
        return None if allow_local else f"{ip} is a loopback address"
    if ip.is_link_local:
        return f"{ip} is a link-local address (cloud metadata lives there)"
    if ip.version == 4 and ip in _CGNAT:
        return f"{ip} is a shared (carrier-grade NAT) address"
    if ip.is_unspecified:
        return f"{ip} is the unspecified address"
    if ip.is_multicast:
        return f"{ip} is a multicast address"
    if ip.is_reserved:
        return f"{ip} is a reserved address"
    if ip.is_private:
        return f"{ip} is a private address"
    if not ip.is_global or any(ip in net for net in _BLOCKED if net.version == ip.version):
        return f"{ip} is not a public address"
    return None


def parse(url: str, allow_local: bool = False) -> Target:
    """Check everything but DNS; the returned Target has no addresses yet."""
    if not isinstance(url, str) or not url:
        raise UnsafeUrl("must be a URL")
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrl(f"must be at most {MAX_URL_LENGTH} characters")
    if _FORBIDDEN_CHARS.search(url):
        raise UnsafeUrl("must not contain spaces, backslashes or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"is not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.netloc:
        raise UnsafeUrl("must be an absolute https:// URL")
    if scheme == "http" and not allow_local:
        raise UnsafeUrl("must use https:// (plain http is not allowed)")
    if "@" in parts.netloc:
        raise UnsafeUrl("must not contain a user name or password")
    if parts.fragment or url.endswith("#"):
        raise UnsafeUrl("must not contain a #fragment")
    host = (parts.hostname or "").lower()
    if not host:
        raise UnsafeUrl("must name a host")
    if _ip(host) is None and not _HOSTNAME.match(host):
        raise UnsafeUrl(
            f"host {host!r} is not a valid host name (use the punycode form of international names)"
        )
    if _ip(host) is not None and "%" in host:
        raise UnsafeUrl("must not use an IPv6 zone index")
    port = port if port is not None else DEFAULT_PORTS[scheme]
    if port == 0 or (port < LOWEST_HIGH_PORT and port != DEFAULT_PORTS[scheme]):
        raise UnsafeUrl(
            f"port {port} is not allowed: use {DEFAULT_PORTS[scheme]} or a port "
            f"from {LOWEST_HIGH_PORT} to 65535"
        )
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(url, scheme, host, port, path, ())


def resolve(host: str, port: int) -> tuple:
    """Every address ``host`` resolves to, in resolver order (IP literals resolve to themselves)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise Unresolvable(_not_public(host)) from None
    addresses = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = str(sockaddr[0]).split("%", 1)[0]
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise Unresolvable(_not_public(host))
    return tuple(addresses)


def check(url: str, allow_local: bool = False) -> Target:
    """Parse ``url``, resolve its host, and refuse it unless every address is allowed.

    Raises UnsafeUrl (policy: permanent) or Unresolvable (DNS: may be transient).
    """
    target = parse(url, allow_local)
    addresses = resolve(target.host, target.port)
    for address in addresses:
        reason = refusal(address, allow_local)
        if reason and address == target.host:  # an IP literal: its own reason
            raise UnsafeUrl(f"{reason}; webhooks only go to public addresses")
        if reason:
            raise UnsafeUrl(_not_public(target.host))
    return Target(target.url, target.scheme, target.host, target.port, target.path, addresses)
