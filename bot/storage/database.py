"""The bot's one database: SQLite in the data folder by default, PostgreSQL when `database_url` is set.

SQLite runs in WAL mode with synchronous=FULL (a recorded concern and a claimed
event survive a crash the moment the call returns) and writes in BEGIN IMMEDIATE
transactions. PostgreSQL is for more than one replica: every replica shares the
escalations, the de-duplication of platform retries and per-user state. The
schema is kept by alembic migrations (bot/storage/migrations/), applied when the
database is opened, under a lock so that replicas starting together migrate once.
SQLAlchemy Core writes the SQL for both.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from index.errors import PolicyBotError

log = logging.getLogger(__name__)

BUSY_TIMEOUT_SECONDS = 30
MIGRATIONS = Path(__file__).with_name("migrations")
MIGRATION_LOCK = 724_001  # PostgreSQL advisory lock id held while migrating


class DatabaseError(PolicyBotError):
    """The database cannot be opened or used; the message says what to check."""


class Database:
    def __init__(self, url: str):
        self.url = url
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        self.engine = _engine(url)
        self.dialect = self.engine.dialect.name
        self.migrations_applied: tuple[str, ...] = ()  # what opening it migrated, oldest first; () when up to date
        self._migrate()

    @classmethod
    def sqlite(cls, path: str | Path) -> Database:
        return cls(f"sqlite:///{path}")

    @classmethod
    def open(cls, target: Database | str | Path) -> Database:
        """A Database, a database URL, or the path of a SQLite file."""
        if isinstance(target, Database):
            return target
        text = str(target)
        return cls(text) if text.startswith(("sqlite:", "postgresql", "postgres:")) else cls.sqlite(target)

    @contextmanager
    def transaction(self):
        """A connection in a write transaction (BEGIN IMMEDIATE on SQLite), committed when the block ends."""
        try:
            with self.engine.begin() as connection:
                yield connection
        except OperationalError as exc:
            raise DatabaseError(f"The database {self.safe_url} failed ({_first_line(exc)}); check it is reachable and has space") from None

    @contextmanager
    def reading(self):
        try:
            with self.engine.connect() as connection:
                yield connection
        except OperationalError as exc:
            raise DatabaseError(f"The database {self.safe_url} failed ({_first_line(exc)}); check it is reachable") from None

    def insert_ignoring_conflicts(self, table, keys: list[str]):
        """INSERT ... ON CONFLICT (keys) DO NOTHING, in this database's dialect (rowcount 0 when the row existed).

        The rowcount is kept for the caller: SQLAlchemy reports an INSERT's rowcount only when asked to, and
        psycopg's closed cursor would otherwise say -1 (so nothing would ever look newly created on PostgreSQL)."""
        return self._insert(table).on_conflict_do_nothing(index_elements=keys).execution_options(preserve_rowcount=True)

    def upsert(self, table, keys: list[str], **values):
        """INSERT ... ON CONFLICT (keys) DO UPDATE SET the other values: one statement, so on PostgreSQL too the
        last writer wins (an UPDATE then an INSERT would drop a write racing another replica's first row)."""
        statement = self._insert(table).values(**values)
        return statement.on_conflict_do_update(index_elements=keys,
                                               set_={key: statement.excluded[key] for key in values if key not in keys})

    def _insert(self, table):
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(table)

    @property
    def safe_url(self) -> str:
        """The URL without its password, for messages."""
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    def _migrate(self) -> None:
        """Bring the schema to the newest migration, in one transaction that holds the database's write lock
        (BEGIN IMMEDIATE on SQLite, an advisory lock on PostgreSQL) from reading the version to committing: of
        replicas opening it together, the first migrates and the others find it done."""
        from alembic import command
        from alembic.config import Config
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

        # SQLite can refuse a brand-new file's lock outright ("database is locked", no busy wait) while another
        # replica is switching it to WAL: that is worth a few short retries, nothing else is
        locked = retry_if_exception(lambda e: isinstance(e, OperationalError) and "locked" in str(e).lower())
        try:
            for attempt in Retrying(retry=locked, stop=stop_after_attempt(5), wait=wait_exponential(0.1, max=2), reraise=True):
                with attempt, self.engine.begin() as connection:
                    if self.dialect == "postgresql":
                        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK})
                    before = MigrationContext.configure(connection).get_current_revision()
                    config.attributes["connection"] = connection
                    command.upgrade(config, "head")
                    after = MigrationContext.configure(connection).get_current_revision()
        except SQLAlchemyError as exc:
            raise DatabaseError(f"Could not open the database {self.safe_url} ({_first_line(exc)}); "
                                "check `database_url` (or that the data folder is on a local disk)") from None
        if before != after:
            scripts = ScriptDirectory.from_config(config).iterate_revisions(after, before or "base")
            self.migrations_applied = tuple(reversed([script.revision for script in scripts]))
            log.info("database %s migrated: %s", self.safe_url, " ".join(self.migrations_applied))


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        # one connection per use: SQLite's locking, not a pool, orders the writers; every connection is set up alike
        engine = create_engine(url, poolclass=NullPool, hide_parameters=True,  # an error never carries a concern's words
                               connect_args={"timeout": BUSY_TIMEOUT_SECONDS, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _setup(dbapi_connection, _record):
            dbapi_connection.isolation_level = None  # SQLAlchemy issues BEGIN itself (below)
            mode = dbapi_connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise DatabaseError(f"Could not put {url} in WAL mode (got {mode}); keep the database on a local disk.")
            dbapi_connection.execute("PRAGMA synchronous=FULL")
            dbapi_connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_SECONDS * 1000}")

        @event.listens_for(engine, "begin")
        def _begin(connection: Connection):
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if url.startswith(("postgresql", "postgres")):
        url = url.replace("postgres://", "postgresql://", 1)
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://"):]
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, isolation_level="READ COMMITTED",
                             hide_parameters=True)  # an error never carries a concern's words
    raise DatabaseError(f"database_url {url!r} is neither sqlite:/// nor postgresql://; see deploy/policybot.example.yaml")


def _first_line(exc: BaseException) -> str:
    message = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return message[0][:200] if message else type(exc).__name__
