"""One POST to an address the SSRF guard checked, never re-resolving the host name.

DNS rebinding: the worker resolves the host, checks every address (netguard), then this
module connects to a checked address itself (urllib3, the transport under requests) with
the URL's Host header, TLS SNI and certificate host name. Redirects are not followed.
The CA bundle is REQUESTS_CA_BUNDLE when set (as for requests), else certifi's.
"""

from __future__ import annotations

import os

from .netguard import Target

MAX_ADDRESSES_TRIED = 3  # checked addresses tried when a connection fails


class DeliveryFailed(Exception):
    """One attempt failed; ``permanent`` failures are not retried."""

    def __init__(self, reason: str, permanent: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


def ca_bundle() -> str | None:
    configured = os.environ.get("REQUESTS_CA_BUNDLE")
    if configured:
        return configured
    try:
        import certifi  # requests' CA bundle
    except ImportError:
        return None
    return certifi.where()


def post(target: Target, body: bytes, headers: dict, timeout: float) -> int:
    """POST ``body`` to the first checked address of ``target`` that accepts a connection.

    Returns the HTTP status; raises DeliveryFailed when no answer came back.
    """
    import urllib3  # imported only by the worker

    limit = urllib3.Timeout(connect=timeout, read=timeout, total=timeout)
    last_error = None
    for address in target.addresses[:MAX_ADDRESSES_TRIED]:
        pool = _pool(urllib3, target, address, limit)
        try:
            response = pool.urlopen(
                "POST",
                target.path,
                body=body,
                headers={**headers, "Host": target.host_header},
                redirect=False,
                retries=False,
                preload_content=False,
                assert_same_host=False,
            )
            response.close()
            return response.status
        except (
            urllib3.exceptions.ConnectTimeoutError,
            urllib3.exceptions.NewConnectionError,
        ) as exc:
            last_error = f"could not connect to {address}: {_short(exc)}"
            continue  # nothing was sent: try the next checked address
        except urllib3.exceptions.TimeoutError:
            raise DeliveryFailed(f"timed out after {timeout:g}s") from None
        except urllib3.exceptions.SSLError as exc:
            raise DeliveryFailed(f"TLS error: {_short(exc)}") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise DeliveryFailed(f"connection error: {_short(exc)}") from None
        finally:
            pool.close()
    raise DeliveryFailed(last_error or "no address to connect to")


def _pool(urllib3, target: Target, address: str, limit):
    """A one-connection pool to ``address`` that speaks to it as ``target.host``."""
    if target.scheme != "https":
        return urllib3.HTTPConnectionPool(
            address, target.port, timeout=limit, retries=False, maxsize=1, block=False
        )
    name = None if target.is_ip_literal else target.host
    return urllib3.HTTPSConnectionPool(
        address,
        target.port,
        timeout=limit,
        retries=False,
        maxsize=1,
        block=False,
        cert_reqs="CERT_REQUIRED",
        ca_certs=ca_bundle(),
        server_hostname=name,
        assert_hostname=name or address,
    )


def _short(exc: Exception) -> str:
    return str(exc)[:300]
