"""A throwaway PostgreSQL for tests: ``postgres_url`` (session) and ``pg_engine`` (per test).

With ``GENSTATUS_TEST_POSTGRES_URL`` set, a fresh database is created on that server.
Otherwise a private cluster is initdb'ed into a temp dir, started with ``pg_ctl`` on a free
loopback port (socket in the temp dir, fsync off) and deleted at the end.  PostgreSQL
refuses to run as root, so as root the cluster belongs to the ``postgres`` user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from monitor.store.db import make_engine, normalize_url

__all__ = ["postgres_cluster", "postgres_url", "pg_engine", "PostgresCluster"]

SKIP_REASON = "PostgreSQL server binaries (initdb, pg_ctl) not found; install Debian's postgresql package"


def find_pg_bindir() -> Path | None:
    candidates: list[str] = []
    if pg_config := shutil.which("pg_config"):
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(out.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    if initdb := shutil.which("initdb"):
        candidates.append(str(Path(initdb).parent))
    for candidate in candidates:
        if candidate and all((Path(candidate) / tool).is_file() for tool in ("initdb", "pg_ctl")):
            return Path(candidate)
    return None


def _version_key(path: str) -> int:
    version = Path(path).parent.name
    return int(version) if version.isdigit() else 0


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresCluster:
    """A private cluster; ``stop()``/``start()`` let tests simulate a database outage."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="genstatus-pg-"))
        self.datadir = self.root / "data"
        self.port = _free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self._as_postgres: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as_postgres = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        cmd = [*self._as_postgres, *args]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")

    def init(self) -> None:
        self._run(str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", "postgres",
                  "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.root / "log"),
                  "-o", options, "-w", "-t", "30", "start")

    def stop(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """The private cluster (skips when binaries are missing or an external server is configured)."""
    if os.environ.get("GENSTATUS_TEST_POSTGRES_URL"):
        pytest.skip("an external PostgreSQL is configured (GENSTATUS_TEST_POSTGRES_URL); cannot stop it")
    bindir = find_pg_bindir()
    if bindir is None:
        pytest.skip(SKIP_REASON)
    if os.geteuid() == 0 and not _has_user("postgres"):
        pytest.skip("running as root and there is no 'postgres' user to own the throwaway cluster")
    cluster = PostgresCluster(bindir)
    try:
        cluster.init()
        cluster.start()
    except BaseException:
        shutil.rmtree(cluster.root, ignore_errors=True)
        raise
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="session")
def postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """URL of a database of its own on a throwaway (or the configured) PostgreSQL server."""
    external = os.environ.get("GENSTATUS_TEST_POSTGRES_URL")
    server_url = normalize_url(external) if external else request.getfixturevalue("postgres_cluster").url
    with _database(server_url) as url:
        yield url


@pytest.fixture
def pg_engine(postgres_url: str) -> Iterator[Engine]:
    """A fresh, empty database per test (dropped afterwards)."""
    with _database(postgres_url) as url:
        engine = make_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()


class _database:
    """Context manager: CREATE DATABASE with a unique name on the server of ``server_url``; DROP at exit."""

    def __init__(self, server_url: str) -> None:
        self.server_url = make_url(server_url)
        self.name = f"genstatus_test_{uuid.uuid4().hex[:12]}"

    def _admin(self, sql: str) -> None:
        engine = create_engine(self.server_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                connection.execute(text(sql))
        finally:
            engine.dispose()

    def __enter__(self) -> str:
        self._admin(f'CREATE DATABASE "{self.name}" ENCODING \'UTF8\' TEMPLATE template0')
        return self.server_url.set(database=self.name).render_as_string(hide_password=False)

    def __exit__(self, *exc: object) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
