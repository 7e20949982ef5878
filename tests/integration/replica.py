"""A private Postgres 15 primary and a streaming replica, started from the distribution's
binaries on free ports in a temporary directory, for tests that need real replication.

Postgres refuses to run as root, so when the tests run as root (CI does) every server
command runs as the ``postgres`` OS user through ``runuser``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from tests.conftest import free_port, wait_for

PG_BIN = Path(os.environ.get("HOMERUN_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = "postgres"

# Durability is not what these tests are about; speed is.
PRIMARY_CONF = """
listen_addresses = '127.0.0.1'
unix_socket_directories = '{sockets}'
fsync = off
synchronous_commit = off
full_page_writes = off
wal_level = replica
max_wal_senders = 5
# Enough WAL kept for a replica that was stopped for a while to catch up by streaming.
wal_keep_size = 256MB
hot_standby = on
max_connections = 200
shared_buffers = 32MB
log_min_messages = warning
"""


def _as_postgres(argv: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", PG_USER, "--", *argv]
    return argv


def _run(argv: list[str], cwd: Path, timeout: float = 120) -> str:
    proc = subprocess.run(
        _as_postgres(argv), cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    return proc.stdout


class PgNode:
    def __init__(self, name: str, base: Path) -> None:
        self.name = name
        self.base = base
        self.data = base / name
        self.log = base / f"{name}.log"
        self.port = free_port()

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        _run(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-w",
                "-t",
                "60",
                "-o",
                f"-p {self.port}",
                "start",
            ],
            self.base,
        )

    def stop(self, mode: str = "fast") -> None:
        _run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"], self.base)

    @property
    def running(self) -> bool:
        proc = subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "status"]),
            cwd=self.base,
            capture_output=True,
            check=False,
        )
        return proc.returncode == 0

    def sql(self, query: str, database: str = "postgres") -> str:
        """Run one statement with psql; the unaligned, tuples-only output."""
        return _run(
            [
                str(PG_BIN / "psql"),
                "-X",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                PG_USER,
                "-d",
                database,
                "-tAc",
                query,
            ],
            self.base,
        ).strip()


class PgCluster:
    """``primary`` streams to ``replica``; ``create_database`` gives a test its own database."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="homerun-pgcluster-"))
        if os.geteuid() == 0:
            user = pwd.getpwnam(PG_USER)
            os.chown(self.base, user.pw_uid, user.pw_gid)
        self.base.chmod(0o700)
        self.primary = PgNode("primary", self.base)
        self.replica = PgNode("replica", self.base)

    def start(self) -> None:
        _run(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(self.primary.data),
                "-U",
                PG_USER,
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale",
                "C.UTF-8",
            ],
            self.base,
        )
        with (self.primary.data / "postgresql.conf").open("a") as conf:
            conf.write(PRIMARY_CONF.format(sockets=self.base))
        self.primary.start()
        _run(
            [
                str(PG_BIN / "pg_basebackup"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.primary.port),
                "-U",
                PG_USER,
                "-D",
                str(self.replica.data),
                "-R",
                "-X",
                "stream",
                "--no-sync",
                "-c",
                "fast",
            ],
            self.base,
        )
        self.replica.start()
        wait_for(self.streaming, timeout=30, message="the replica to stream from the primary")

    def streaming(self) -> bool:
        return (
            self.primary.sql("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")
            == "1"
        )

    def create_database(self) -> tuple[str, str]:
        """A fresh database; (primary DSN, replica DSN) once the replica has it too."""
        name = f"homerun_test_{uuid.uuid4().hex[:12]}"
        self.primary.sql(f'CREATE DATABASE "{name}"')
        wait_for(
            lambda: self.replica.sql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'") == "1",
            timeout=30,
            message=f"database {name} on the replica",
        )
        return self.primary.dsn(name), self.replica.dsn(name)

    def drop_database(self, primary_dsn: str) -> None:
        name = primary_dsn.rsplit("/", 1)[1]
        self.primary.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def replica_has(self, database: str, query: str) -> bool:
        """True once ``query`` (a boolean SELECT) is true on the replica."""
        try:
            return self.replica.sql(query, database) == "t"
        except RuntimeError:
            return False

    def cleanup(self) -> None:
        for node in (self.replica, self.primary):
            if node.data.exists() and node.running:
                try:
                    node.stop("immediate")
                except RuntimeError:
                    pass
        # Leave the logs to read when a test failed; remove them otherwise.
        shutil.rmtree(self.base, ignore_errors=True)


def start_cluster() -> PgCluster:
    cluster = PgCluster()
    started = time.monotonic()
    try:
        cluster.start()
    except BaseException:
        for node in (cluster.primary, cluster.replica):
            if node.log.exists():
                print(f"--- {node.name} log\n{node.log.read_text()[-4000:]}")
        cluster.cleanup()
        raise
    print(
        f"postgres primary :{cluster.primary.port} + replica :{cluster.replica.port}"
        f" up in {time.monotonic() - started:.1f}s"
    )
    return cluster
