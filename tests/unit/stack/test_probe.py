"""stack.probe against a real HTTP server on this machine's loopback."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from stack import probe
from tests.conftest import free_port


class _Registry(http.server.BaseHTTPRequestHandler):
    """Answers /v2/ like a registry and everything else with 404."""

    def do_GET(self) -> None:  # the method name http.server dispatches to
        self.send_response(200 if self.path == "/v2/" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_a_serving_endpoint_is_reported_at_once(server):
    assert probe.status(f"{server}/v2/") is None
    probe.wait_until_serving(f"{server}/v2/", timeout=5)


def test_another_status_is_not_serving(server):
    assert probe.status(f"{server}/nope") == "HTTP 404"
    with pytest.raises(TimeoutError, match="HTTP 404"):
        probe.wait_until_serving(f"{server}/nope", timeout=0.3, interval=0.05)


def test_nothing_listening_times_out_with_the_reason():
    url = f"http://127.0.0.1:{free_port()}/v2/"
    assert probe.status(url) is not None
    with pytest.raises(TimeoutError, match=r"did not answer within 0\.3s"):
        probe.wait_until_serving(url, timeout=0.3, interval=0.05)
