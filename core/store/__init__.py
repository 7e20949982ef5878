"""Data access: every SQL statement outside the state machine, one module per concept.

Who may write SQL, and where:

- ``core.transitions`` (with ``core.outbox``): every status change and the event it appends,
  each in one transaction. Nothing else changes a job's, task's or attempt's status.
- ``core.views``: the API's read models (a job with its tasks, a task with its attempts).
- ``core.tokens``: API tokens (create, list, revoke), and ``core.auth`` its one lookup by
  hash, which must ask the primary before a replica.
- ``core.store``: everything else, so that a table's statements are found in one place:

  ``tasks``     what the queue side reads of tasks and attempts (reconciling, stale
                deliveries, the containers to sweep, a job's tasks for a webhook);
  ``events``    the history outside its appends: feeds' replays, the relay's batches and
                marks, where a token's numbering stands;
  ``webhooks``  webhook deliveries and their attempts;
  ``jobs``      ownership checks;
  ``retention`` the purger's: expired jobs, claimed and deleted in batches.
  ``runners``   the live leases by runner (the dashboard's system page).

Functions take the connection they run on (a ``Database``, a transaction's ``Connection``,
or ``Databases``/``Reads`` for replica-aware reads) and return plain values or rows; they
hold no state and decide nothing (the callers do).
"""
