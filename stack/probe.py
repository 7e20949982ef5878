"""Wait until an HTTP endpoint answers (200, or the status a caller expects).

The Pulumi program pushes images into the stack's own registry right after creating it.
Swarm reports a replicated service converged once its task is healthy, but a global one
(``registry-proxy``) gives nothing to wait on, so the program asks the address it is about to
push to instead.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request

# No proxy from the environment: the address is this machine's own loopback.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def status(url: str, timeout: float = 5.0, expect: int = 200) -> str | None:
    """None when ``url`` answers ``expect``, else why not (one attempt)."""
    try:
        with _OPENER.open(url, timeout=timeout) as response:
            code = int(response.status)
    except urllib.error.HTTPError as exc:
        code = exc.code
    except (urllib.error.URLError, OSError) as exc:
        return str(getattr(exc, "reason", exc))
    return None if code == expect else f"HTTP {code}"


def wait_until_serving(
    url: str, timeout: float = 300.0, interval: float = 1.0, expect: int = 200
) -> None:
    """Return once ``url`` answers ``expect``; TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while (why := status(url, min(5.0, timeout), expect)) is not None:
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{url} did not answer within {timeout:g}s: {why}")
        time.sleep(interval)
