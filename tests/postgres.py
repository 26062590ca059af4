"""A real PostgreSQL server for the test session, and a fresh database on it for each test.

The server is Debian's (the `postgresql` package; .ci/run installs it): `initdb` makes a cluster in a
temporary folder, `pg_ctl` starts it on 127.0.0.1 and a free port, and the session's end stops it and deletes
the folder. PostgreSQL refuses to run as root, so under root it runs as the `postgres` user (created here as a
system user when missing). Without PostgreSQL's server binaries the tests that need it are skipped with the
reason; set POLICYBOT_REQUIRE_POSTGRES=1 to make that a failure instead (for a CI that must prove both backends).

Import the fixtures into a test module: `from tests.postgres import postgres_server, postgres_url  # noqa: F401`.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

SERVER_USER = "postgres"  # Debian's package creates it; an unprivileged account the server runs as under root
START_SECONDS = 30


def find_bindir() -> Path | None:
    """The folder holding PostgreSQL's server programs (initdb, pg_ctl), or None when none is installed."""
    candidates = [os.environ.get("POLICYBOT_PG_BINDIR")]
    if shutil.which("pg_config"):
        try:
            candidates.append(subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout.strip())
        except (OSError, subprocess.CalledProcessError):
            pass
    # Debian installs each major version side by side; the newest first
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    if shutil.which("initdb"):
        candidates.append(str(Path(shutil.which("initdb")).resolve().parent))
    for folder in filter(None, candidates):
        if all((Path(folder) / program).is_file() for program in ("initdb", "pg_ctl", "postgres")):
            return Path(folder)
    return None


def _unavailable(reason: str) -> None:
    if os.environ.get("POLICYBOT_REQUIRE_POSTGRES"):
        pytest.fail(f"{reason} (POLICYBOT_REQUIRE_POSTGRES is set)", pytrace=False)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _server_account() -> pwd.struct_passwd | None:
    """Who runs the server: None (this user) unless we are root, which PostgreSQL refuses."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVER_USER], check=True)
        return pwd.getpwnam(SERVER_USER)


@dataclass
class PostgresServer:
    bindir: Path
    folder: Path
    port: int
    account: pwd.struct_passwd | None
    user: str = "policybot"  # the cluster's superuser; trust authentication on 127.0.0.1 only

    _names = itertools.count(1)

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def log(self) -> Path:
        return self.folder / "server.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def run(self, program: str, *args: str) -> subprocess.CompletedProcess:
        """One of PostgreSQL's programs, as the server's account."""
        extra = {}
        if self.account is not None:
            extra = dict(user=self.account.pw_uid, group=self.account.pw_gid, extra_groups=[])
        env = dict(os.environ, HOME=str(self.folder), LC_ALL="C.UTF-8", PGTZ="UTC")
        return subprocess.run([str(self.bindir / program), *args], capture_output=True, text=True, env=env,
                              cwd=self.folder, timeout=START_SECONDS + 30, check=False, **extra)

    def start(self) -> None:
        self.folder.chmod(0o700)
        if self.account is not None:
            os.chown(self.folder, self.account.pw_uid, self.account.pw_gid)
        done = self.run("initdb", "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8", "--no-locale",
                        "--no-sync", "--no-instructions")
        if done.returncode:
            raise RuntimeError(f"initdb failed:\n{done.stdout}\n{done.stderr}")
        for attempt in range(3):  # another process may take the free port before the server binds it
            self.port = _free_port()
            options = " ".join([
                "-c listen_addresses=127.0.0.1", f"-c port={self.port}", f"-c unix_socket_directories={self.folder}",
                "-c max_connections=300", "-c timezone=UTC",
                # a throwaway cluster: no need to survive a power cut, so the tests need not wait for the disk
                "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off",
            ])
            done = self.run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", str(START_SECONDS), "start")
            if done.returncode == 0:
                return
        raise RuntimeError(f"pg_ctl start failed:\n{done.stdout}\n{done.stderr}\n{self.log.read_text(errors='replace')[-4000:]}")

    def stop(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)

    def create_database(self) -> str:
        """A new, empty database; its URL (postgresql://, the form `database_url` takes)."""
        name = f"test_{os.getpid()}_{next(self._names)}"
        self.admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        self.admin(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True, connect_timeout=10) as connection:
            connection.execute(sql)


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server of our own for the session (skipped, with the reason, where PostgreSQL is not installed)."""
    bindir = find_bindir()
    if bindir is None:
        _unavailable("PostgreSQL's server programs (initdb, pg_ctl) are not installed: `apt-get install postgresql` "
                     "(Debian) or set POLICYBOT_PG_BINDIR to their folder to run the PostgreSQL storage tests")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("psycopg 3 is not installed: `.venv/bin/pip install 'psycopg[binary]'` to run the PostgreSQL storage tests")
    account = _server_account()
    # under root the server's account must reach its folder: /tmp, not a TMPDIR that may sit in root's home
    folder = Path(tempfile.mkdtemp(prefix="policybot-pg-", dir="/tmp" if account is not None else None))
    server = PostgresServer(bindir, folder, 0, account)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server):
    """The URL of a new, empty database of its own for one test; dropped afterwards."""
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url)
