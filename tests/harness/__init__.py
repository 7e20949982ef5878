"""The one harness for the integration tests and ``make bench``.

- ``waiting``: free ports, ``wait_for`` / ``eventually`` (a condition with a deadline);
- ``stores``: a private redis-server, a private database on the machine's Postgres;
- ``settings``: ``settings_for``, a test's settings on its private stores;
- ``services``: ``homerun api|runner|notifier`` subprocesses configured by
  ``Settings.to_env`` alone, never by the developer's own ``HOMERUN_*`` variables;
- ``stack``: a whole private homerun (stores, processes, a token) to run jobs against.

Plain modules without pytest, so ``bench/`` imports them as they are; the fixtures built on
them live in ``tests/conftest.py`` (stores) and ``tests/integration/conftest.py``.
"""
