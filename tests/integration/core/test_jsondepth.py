"""Postgres and Python agree on the JSON depth bound (``core.jsondepth``)."""

from __future__ import annotations

import json

import pytest
from databases import Database

from core.jsondepth import MAX_JSON_DEPTH, exceeds_depth, too_deep_sql

pytestmark = pytest.mark.integration


def nested(depth: int, *, objects: bool) -> str:
    if depth == 0:
        return '"leaf"'
    inner = nested(depth - 1, objects=objects)
    # Shallower siblings beside the deep branch: only the deepest path counts.
    sibling = "[]" if depth > 1 else "2"
    return f'{{"a": {sibling}, "deep": {inner}}}' if objects else f"[{sibling}, {inner}, 3]"


@pytest.mark.parametrize("objects", [True, False])
@pytest.mark.parametrize("depth", [0, 1, 2, MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1])
async def test_postgres_and_python_agree_on_the_bound(
    db: Database, depth: int, objects: bool
) -> None:
    text = nested(depth, objects=objects)
    in_postgres = await db.fetch_val(f"SELECT {too_deep_sql('CAST(:v AS jsonb)')}", {"v": text})
    assert in_postgres is exceeds_depth(json.loads(text)) is (depth > MAX_JSON_DEPTH)


async def test_postgres_judges_what_python_cannot_decode(db: Database) -> None:
    text = "[" * 5_000 + "]" * 5_000  # json.loads of this raises RecursionError
    assert await db.fetch_val(f"SELECT {too_deep_sql('CAST(:v AS jsonb)')}", {"v": text}) is True
