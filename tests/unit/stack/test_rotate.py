"""scripts/rotate.sh refuses, before it reads or changes anything, a rotation that would break
the stack: a generated secrets-keyring (no keyring, and the old keys gone)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _rotate(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "scripts" / "rotate.sh")],
        cwd=ROOT,
        # A stack no machine deployed: a refusal happens before its files are looked for.
        env={**os.environ, "HOMERUN_STACK": "hrrotate-unit", **env},
        text=True,
        capture_output=True,
        timeout=60,
        check=False,
    )


def test_the_keyring_is_never_generated(tmp_path: Path) -> None:
    bare = _rotate(SECRET="secrets-keyring")
    assert bare.returncode == 2 and "VALUE_FILE" in bare.stderr, bare.stderr
    not_a_keyring = tmp_path / "ring"
    not_a_keyring.write_text("a-random-token-instead-of-key-lines\n")
    wrong = _rotate(SECRET="secrets-keyring", VALUE_FILE=str(not_a_keyring))
    assert wrong.returncode == 2 and "VALUE_FILE" in wrong.stderr, wrong.stderr
    # A keyring that parses gets past the check (and stops at the missing stack).
    ring = tmp_path / "good"
    line = "k1 " + "A" * 43 + "="
    ring.write_text(line + "\n")
    good = _rotate(SECRET="secrets-keyring", VALUE_FILE=str(ring))
    assert good.returncode == 2 and "is missing" in good.stderr, good.stderr


def test_a_postgres_password_needs_alter_role_first() -> None:
    refused = _rotate(SECRET="db-password")
    assert refused.returncode == 2 and "ALTER ROLE" in refused.stderr, refused.stderr
