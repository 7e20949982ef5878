"""The stack's secret values on the deploying machine: one file per secret key, and the names
the Swarm secrets get from them.

``python -m stack.compose`` and the Pulumi program read the same directory, so a machine that
deployed with one can switch to the other without a new database password.

Naming. A Swarm secret is immutable and one in use cannot be removed, so a fixed name
(``<stack>_<key>``) makes a new value impossible to deploy. Each secret is therefore named
after its content: ``<stack>_<key>-<digest>``, the digest being an HMAC-SHA256 of the value
under the stack's naming key (the ``naming-key`` file beside the secrets, or Pulumi config
``secretNamingKey``). A new value is a new secret, which the services roll onto in place;
the old one is pruned once nothing uses it. The same value always gets the same name, so a
second checkout holding the same files converges with the running stack. The key keeps the
name from being a bare hash of a password, which anyone who can list secrets could test
guesses against.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

from stack.model import Topology
from stack.topology import DERIVED_SECRET_KEYS, REGISTRY_USER, SECRET_KEYS

# The HMAC key of the secrets' names: a file beside them, never a Swarm secret.
NAMING_KEY = "naming-key"
# Hex digits of the digest in a name: Swarm names are at most 64 characters, and the digest
# only has to tell one key's successive values apart.
_DIGEST_CHARS = 8


def _generate(key: str) -> str:
    if key == "secrets-keyring":
        # The keyring's format (core/sealing.py): "<key id> <base64 of 32 bytes>" per line,
        # the last one current; a rotation appends a line (docs/operations.md).
        return f"k1 {base64.b64encode(secrets.token_bytes(32)).decode()}\n"
    return secrets.token_urlsafe(32)


# bcrypt's work factor for the registry's htpasswd: the password is 32 random bytes, so the
# hash only has to be a hash; 10 keeps each derivation near 50 ms.
_BCRYPT_ROUNDS = 10
# bcrypt's own base64 alphabet, in the order of the standard one.
_BCRYPT_B64 = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
    b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
)


def htpasswd_line(user: str, password: str) -> str:
    """``user:<bcrypt>`` as the registry's htpasswd file holds it, the same for the same
    password: the salt is an HMAC of the password rather than random, so a second checkout
    or the Pulumi program derives the same bytes, hence the same secret name (a random salt
    would replace the registry's secret at every deploy). The password is random and used
    for this one user, so a salt that repeats for a repeated password gives nothing away."""
    import bcrypt  # the stack extra's; only a stack with its own registry derives this

    mac = hmac.new(password.encode(), b"homerun registry htpasswd salt", hashlib.sha256)
    # 16 bytes are bcrypt's salt: 22 characters of its base64 (the last carries 2 bits).
    encoded = base64.b64encode(mac.digest()[:16]).rstrip(b"=").translate(_BCRYPT_B64)
    salt = b"$2b$%02d$" % _BCRYPT_ROUNDS + encoded
    return f"{user}:{bcrypt.hashpw(password.encode(), salt).decode()}"


def derive(key: str, values: Mapping[str, str]) -> str:
    """The value of the derived secret ``key`` (topology.DERIVED_SECRET_KEYS) from the others."""
    source, _ = DERIVED_SECRET_KEYS[key]
    if key == "registry-htpasswd":
        return htpasswd_line(REGISTRY_USER, normalize(values[source]).decode())
    raise KeyError(key)


def with_derived(values: Mapping[str, str]) -> dict[str, str]:
    """``values`` and every derived secret whose source is among them."""
    return {
        **values,
        **{
            key: derive(key, values)
            for key, (source, _) in DERIVED_SECRET_KEYS.items()
            if source in values
        },
    }


def default_dir(stack: str) -> Path:
    # .homerun/ is the project's gitignored state directory.
    return Path(".homerun") / "stacks" / stack / "secrets"


def ensure(directory: Path, *, generate: bool) -> dict[str, Path]:
    """Path of every secret's file; missing ones are generated (0600) or refused. The naming
    key is generated with them (it is not in the result: no service mounts it)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    paths: dict[str, Path] = {}
    for key in (*SECRET_KEYS, NAMING_KEY):
        path = directory / key
        if not path.exists():
            if not generate:
                what = SECRET_KEYS.get(key, "the key the secrets' names are derived with")
                raise FileNotFoundError(f"secret file {path} is missing ({what})")
            write_new(path, _generate(key))
        if key != NAMING_KEY:
            paths[key] = path.resolve()
    # Derived files follow their source on every call: a rotated password brings its
    # htpasswd line along. Never edited by hand, so rewriting them loses nothing.
    values = {key: path.read_text() for key, path in paths.items()}
    for key, value in with_derived(values).items():
        if key in DERIVED_SECRET_KEYS:
            path = directory / key
            if not path.exists() or path.read_text() != value:
                path.touch(mode=0o600)
                path.write_text(value)
            paths[key] = path.resolve()
    return paths


def write_new(path: Path, value: str) -> None:
    # O_EXCL: two deploys racing never overwrite a password the other one used.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value)


def normalize(value: str | bytes) -> bytes:
    """The bytes a secret holds in Swarm, whichever way its value came (a file with a final
    newline, a Pulumi config value without): the value without surrounding whitespace. Both
    renderings store exactly these."""
    text = value.decode() if isinstance(value, bytes) else value
    return text.strip().encode()


def read(directory: Path) -> dict[str, str]:
    """Every secret's value, from existing files only (the naming key is not one), and the
    derived ones computed from them."""
    return with_derived(
        {
            key: (directory / key).read_text().strip()
            for key in SECRET_KEYS
            if (directory / key).exists()
        }
    )


def read_naming_key(directory: Path) -> bytes | None:
    path = directory / NAMING_KEY
    return normalize(path.read_bytes()) if path.exists() else None


def digest(naming_key: bytes, value: bytes) -> str:
    return hmac.new(naming_key, value, hashlib.sha256).hexdigest()[:_DIGEST_CHARS]


def versioned_name(base: str, naming_key: bytes, value: bytes) -> str:
    """``<base>-<digest>``: the Swarm name of a secret holding ``value``."""
    return f"{base}-{digest(naming_key, normalize(value))}"


def named(topology: Topology, values: Mapping[str, str | bytes], naming_key: bytes) -> Topology:
    """``topology`` with every secret named after its value (see the module's docstring).
    Generic over the topology's secrets: one added to stack/topology.py is named the same way."""
    return topology.with_secret_names(
        {
            s.key: versioned_name(s.name, naming_key, normalize(values[s.key]))
            for s in topology.secrets
        }
    )


def base_name(name: str, bases: Iterable[str]) -> str | None:
    """Which of the topology's base names (``<stack>_<key>``) a Swarm secret's name belongs
    to: the base itself (a stack deployed before names carried a digest) or base-<digest>."""
    for base in bases:
        if name == base:
            return base
        rest = name.removeprefix(f"{base}-")
        if (
            rest != name
            and len(rest) == _DIGEST_CHARS
            and all(c in "0123456789abcdef" for c in rest)
        ):
            return base
    return None
