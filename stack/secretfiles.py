"""The stack's secret values on the deploying machine: one file per secret key.

``python -m stack.compose`` and the Pulumi program read the same directory, so a machine that
deployed with one can switch to the other without a new database password.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from stack.topology import SECRET_KEYS


def _generate(key: str) -> str:
    if key == "secrets-keyring":
        # The keyring's format (core/sealing.py): "<key id> <base64 of 32 bytes>" per line,
        # the last one current; a rotation appends a line (docs/operations.md).
        return f"k1 {base64.b64encode(secrets.token_bytes(32)).decode()}\n"
    return secrets.token_urlsafe(32)


def default_dir(stack: str) -> Path:
    # .homerun/ is the project's gitignored state directory.
    return Path(".homerun") / "stacks" / stack / "secrets"


def ensure(directory: Path, *, generate: bool) -> dict[str, Path]:
    """Path of every secret's file; missing ones are generated (0600) or refused."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    paths: dict[str, Path] = {}
    for key in SECRET_KEYS:
        path = directory / key
        if not path.exists():
            if not generate:
                raise FileNotFoundError(f"secret file {path} is missing ({SECRET_KEYS[key]})")
            # O_EXCL: two deploys racing never overwrite a password the other one used.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(_generate(key))
        paths[key] = path.resolve()
    return paths


def read(directory: Path) -> dict[str, str]:
    """Every secret's value, from existing files only."""
    return {
        key: (directory / key).read_text().strip()
        for key in SECRET_KEYS
        if (directory / key).exists()
    }
