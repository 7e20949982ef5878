"""One private homerun and one Chromium for every dashboard test module (package scope):
each module adds its tests, not another stack's start-up."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

from core.sealing import generate_line
from tests.harness.stack import Stack, private_stack


@pytest.fixture(scope="package")
def stack() -> Iterator[Stack]:
    with private_stack(
        "dashboard-ui", ui_session_key="dashboard-test-key", secrets_keyring=generate_line("k1")
    ) as s:
        yield s


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        yield b
        b.close()
