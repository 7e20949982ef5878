"""What the CLI, the harness and the tests import from the guard."""

from __future__ import annotations

from guard import policy, proxy, service


def test_the_guard_surface_is_pinned() -> None:
    assert set(policy.__all__) == {
        "Kind",
        "Profile",
        "Refused",
        "Route",
        "check_create",
        "check_mounts",
        "check_owned",
        "list_query",
        "route",
        "unversioned",
    }
    assert set(proxy.__all__) == {"MAX_BODY", "Guard"}
    assert set(service.__all__) == {"main", "serve"}
