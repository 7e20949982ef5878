"""Task images: which registry a name points at, and pulling one the engine lacks.

On one node the task images are built on the engine itself; on a cluster they live in a
registry and every node's runner fetches them on first use. Task types name images the
way Docker Hub does (``homerun/task-shell:0.1.0``), so the runner qualifies such names
with the operator's registry (``HOMERUN_TASK_IMAGE_REGISTRY``) before it runs or pulls
them; a name that already says where it lives is left alone. The allow-list of the
``container`` task type is checked earlier, on the name as the user wrote it.

The puller runs in the engine's own thread pool, pulls one image once however many
attempts need it at the same moment, and never takes longer than its time-out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import docker
import docker.errors
import requests

__all__ = ["Login", "PullError", "Puller", "is_qualified", "qualify", "split"]

log = logging.getLogger(__name__)


def split(image: str) -> tuple[str, str | None, str | None]:
    """(name, tag, digest) of a reference: ``reg:5000/a/b:1@sha256:..`` → its three parts.

    A ``:`` before the last ``/`` is a registry port, never a tag.
    """
    name, _, digest = image.partition("@")
    tag: str | None = None
    head, colon, last = name.rpartition(":")
    if colon and "/" not in last:
        name, tag = head, last
    return name, tag, digest or None


def is_qualified(image: str) -> bool:
    """Whether ``image`` names its registry, by the rule Docker itself uses.

    The first path component is a registry when it has a ``.`` or a ``:`` or is
    ``localhost``; a name with one component (``alpine:3``) never has one.
    """
    name, _, _ = split(image)
    first, slash, _ = name.partition("/")
    return bool(slash) and ("." in first or ":" in first or first == "localhost")


def qualify(image: str, registry: str) -> str:
    """``image`` as pulled from and run as: unqualified names get ``registry`` in front.

    An empty ``registry`` changes nothing, and neither does an already qualified name.
    """
    registry = registry.strip().rstrip("/")
    if not registry or is_qualified(image):
        return image
    return f"{registry}/{image}"


class PullError(Exception):
    """A pull failed; the message names the image and what the engine or registry said."""


@dataclass(frozen=True)
class Login:
    """A user and password for one registry (``host[:port]``)."""

    registry: str
    username: str
    password: str = field(repr=False)

    @classmethod
    def of(cls, registry: str, username: str, password: str | None) -> Login | None:
        """The login the settings describe; None without a registry or a user."""
        registry = registry.strip().rstrip("/")
        if not (registry and username):
            return None
        return cls(registry, username, password or "")

    def covers(self, image: str) -> bool:
        """Whether ``image`` is pulled from this login's registry."""
        name, _, _ = split(image)
        return is_qualified(image) and name.partition("/")[0] == self.registry


class Puller:
    """Pulls missing images for one engine: once per image at a time, bounded in time.

    ``call`` runs a blocking function in the engine's thread pool (``Engine.call``).
    """

    def __init__(
        self,
        client: docker.DockerClient,
        call: Callable[[Callable[[], None]], Awaitable[None]],
        *,
        timeout: float,
        login: Login | None = None,
    ) -> None:
        self._client = client
        self._call = call
        self.timeout = timeout
        # Sent with pulls from its registry only: another registry never sees the password.
        self._login = login
        self._pulling: dict[str, asyncio.Task[None]] = {}
        self._waiting: dict[str, int] = {}

    @property
    def in_flight(self) -> dict[str, int]:
        """The images being pulled now, each with the number of attempts waiting for it."""
        return dict(self._waiting)

    def close(self) -> None:
        """Abandon the pulls in flight (the engine is closing); a thread ends at its deadline."""
        for shared in list(self._pulling.values()):
            shared.cancel()

    async def ensure(self, image: str) -> None:
        """Return once ``image`` is on the engine; raise ``PullError`` if it cannot be.

        Attempts that need the image at the same time share one pull. Cancelling a caller
        only stops its own wait: the pull goes on for the others.
        """
        shared = self._pulling.get(image)
        if shared is None:
            shared = asyncio.ensure_future(self._fetch(image))
            self._pulling[image] = shared
            shared.add_done_callback(lambda done: self._settled(image, done))
        self._waiting[image] = self._waiting.get(image, 0) + 1
        try:
            await asyncio.shield(shared)
        finally:
            self._waiting[image] -= 1
            if not self._waiting[image]:
                del self._waiting[image]

    def _settled(self, image: str, done: asyncio.Task[None]) -> None:
        if self._pulling.get(image) is done:
            del self._pulling[image]
        # Retrieve the outcome so a pull every waiter gave up on is not reported as an
        # exception nobody looked at; those who waited got it through the shield.
        if not done.cancelled():
            done.exception()

    async def _fetch(self, image: str) -> None:
        deadline = time.monotonic() + self.timeout
        try:
            await asyncio.wait_for(
                self._call(lambda: self._fetch_blocking(image, deadline)), self.timeout
            )
        except TimeoutError:
            raise PullError(
                f"pulling image {image} took longer than {self.timeout:g} s"
                " (HOMERUN_IMAGE_PULL_TIMEOUT_SECONDS)"
            ) from None
        except docker.errors.APIError as exc:
            raise PullError(f"pulling image {image} failed: {exc.explanation or exc}") from None
        except (docker.errors.DockerException, requests.RequestException) as exc:
            raise PullError(f"pulling image {image} failed: {exc}") from None

    def _fetch_blocking(self, image: str, deadline: float) -> None:
        """Pull ``image`` unless it arrived meanwhile (runs in a thread)."""
        # An attempt that found the image missing just before another attempt's pull
        # finished would otherwise pull it a second time.
        try:
            self._client.api.inspect_image(image)
            return
        except docker.errors.ImageNotFound:
            pass
        name, tag, digest = split(image)
        started = time.monotonic()
        log.info("pulling image %s", image)
        auth = (
            {"username": self._login.username, "password": self._login.password}
            if self._login is not None and self._login.covers(image)
            else None
        )
        events: Any = self._client.api.pull(
            name, tag=digest or tag, stream=True, decode=True, auth_config=auth
        )
        for event in events:
            # A failure after the pull began arrives as an event, not as an HTTP status.
            if "error" in event:
                raise PullError(f"pulling image {image} failed: {event['error']}")
            if time.monotonic() > deadline:
                # The caller gave up already; stop reading so the thread comes back.
                return
        log.info("pulled image %s in %.1f s", image, time.monotonic() - started)
