"""The uid and gid a task runs as: one per token, so tokens share no per-uid kernel limit.

The kernel counts some resources per uid, whatever the container: inotify instances and
watches (``fs.inotify.max_user_instances``, 128 by default), ``RLIMIT_NPROC``'s processes,
POSIX message queue bytes, locked memory, keyrings. Were every task one uid (nobody,
65534), one token's task could use them all up and another token's task would fail
(EMFILE from ``inotify_init``). So each token's tasks run as a uid of their own, derived
from the token id and the same on every runner and across restarts:

    uid = gid = FIRST_UID + sha256(token id) mod UID_SLOTS      (200,000 .. 1,199,999)

- never 0, and above every host system and login uid (below 65,536), nobody (65534)
  included, and above the first subordinate range Debian hands out (100,000 .. 165,535);
- stable, so an operator can map a uid seen in ``ps`` or an audit log back to its token
  (``task_uid``); no table, no migration, nothing to allocate or free;
- two tokens can collide (a million slots: about one pair among 1,400 tokens, by the
  birthday bound, shares a uid, and so its per-uid limits), which leaves them where every
  token was before, never worse. The uid grants nothing: no file on the host is owned by
  it, and a task's files are the world-readable ones its runner placed.

Tasks of one token still share their uid's limits among themselves: a token competes with
itself, not with others.
"""

from __future__ import annotations

import hashlib

FIRST_UID = 200_000
UID_SLOTS = 1_000_000


def task_uid(token_id: str) -> int:
    """The uid (and gid) of every task of the token ``token_id``."""
    if not token_id:
        raise ValueError("a task's uid needs its token id")
    digest = hashlib.sha256(token_id.encode()).digest()
    return FIRST_UID + int.from_bytes(digest[:8], "big") % UID_SLOTS
