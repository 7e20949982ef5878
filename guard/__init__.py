"""The Docker API guard: the one process that holds the engine's socket (``homerun guard``).

The runner reaches Docker only through it (its ``HOMERUN_DOCKER_URL`` names the guard's
socket, ``HOMERUN_GUARD_SOCKET``), and it lets through exactly the calls a task needs:
``guard/policy.py`` what is allowed, ``guard/proxy.py`` the proxy, ``guard/service.py``
the process. docs/operations.md, "Threat model", says what that leaves a runner.
"""
