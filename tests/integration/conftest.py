"""Fixtures every integration suite shares: a connected database, base settings, and
``homerun`` service processes whose logs join the report of a test that fails.

A suite refines ``settings`` by overriding the fixture (and requesting this one); its
service processes come from ``services`` (one test) or ``module_services`` (one module).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path

import pytest
from databases import Database

from core.settings import Settings
from tests.harness.services import Services
from tests.harness.settings import settings_for

# The Services of a node (a test, or a module for module-scoped stacks), for the report.
_SERVICES = pytest.StashKey[list[Services]]()


def _held(node: pytest.Item | pytest.Collector, services: Services) -> Services:
    node.stash.setdefault(_SERVICES, []).append(services)
    return services


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test's report gets the end of each of its service processes' logs."""
    report = yield
    if report.failed:
        for node in item.listchain():
            for services in node.stash.get(_SERVICES, []):
                for process in services:
                    title = f"homerun {process.name} log ({process.log_path}, last 100 lines)"
                    report.sections.append((title, process.tail(100)))
    return report


@pytest.fixture
def services(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Services]:
    """Starts ``homerun`` processes for one test; every one still running is stopped after."""
    held = _held(request.node, Services(tmp_path))
    yield held
    held.stop_all()


@pytest.fixture(scope="module")
def module_services(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Services]:
    """``services`` for a module-scoped stack: stopped after the module's last test."""
    held = _held(request.node, Services(tmp_path_factory.mktemp("services")))
    yield held
    held.stop_all()


@pytest.fixture
async def db(migrated_database_url: str) -> AsyncIterator[Database]:
    database = Database(migrated_database_url)
    await database.connect()
    yield database
    await database.disconnect()


@pytest.fixture
def settings(migrated_database_url: str, queue_redis_url: str, events_redis_url: str) -> Settings:
    return settings_for(migrated_database_url, queue_redis_url, events_redis_url)
