"""Each token's tasks run as a uid of their own, in a range no host account uses."""

from __future__ import annotations

import uuid

import pytest

from runners import identity


def test_a_token_always_gets_the_same_uid_and_tokens_spread() -> None:
    tokens = [str(uuid.uuid4()) for _ in range(200)]
    uids = [identity.task_uid(t) for t in tokens]
    assert uids == [identity.task_uid(t) for t in tokens]
    assert all(identity.FIRST_UID <= u < identity.FIRST_UID + identity.UID_SLOTS for u in uids)
    # Far above root, nobody (65534) and the login range; 200 tokens in a million slots.
    assert min(uids) > 165_535
    assert len(set(uids)) >= 199


def test_a_pinned_token_keeps_its_uid() -> None:
    # The formula is documented for operators mapping a uid back to its token: a change to
    # it would move every token's uid, so it is pinned.
    assert identity.task_uid("00000000-0000-0000-0000-000000000000") == 798_868


def test_no_token_no_uid() -> None:
    with pytest.raises(ValueError, match="token id"):
        identity.task_uid("")
