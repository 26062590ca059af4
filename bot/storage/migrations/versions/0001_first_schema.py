"""The schema of the releases before migrations: escalations, their audit, and the Slack adapter's state.

Created only where missing, so a database written by those releases is kept as it is.
"""

from alembic import op

revision = "0001"
down_revision = None

ESCALATIONS = """
CREATE TABLE IF NOT EXISTS escalations (
    id TEXT PRIMARY KEY, dedupe_key TEXT NOT NULL UNIQUE, school TEXT NOT NULL, route TEXT NOT NULL,
    categories TEXT NOT NULL, reasons TEXT NOT NULL, about_head INTEGER NOT NULL DEFAULT 0, raised_by TEXT,
    raised_at TEXT NOT NULL, channel TEXT, message_ts TEXT, permalink TEXT, text TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, last_attempt_at TEXT,
    sending_channel TEXT, sending_at TEXT, delivered_channel TEXT, delivered_ts TEXT, delivered_at TEXT,
    acknowledged_by TEXT, acknowledged_at TEXT, closed_by TEXT, closed_at TEXT, resent_to_fallback_at TEXT,
    fallback_channel TEXT, fallback_ts TEXT)"""
AUDIT = {
    "sqlite": "CREATE TABLE IF NOT EXISTS escalation_audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, escalation_id TEXT NOT NULL,"
              " at TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, detail TEXT)",
    "postgresql": "CREATE TABLE IF NOT EXISTS escalation_audit (seq BIGSERIAL PRIMARY KEY, escalation_id TEXT NOT NULL,"
                  " at TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, detail TEXT)",
}
SLACK = (
    "CREATE TABLE IF NOT EXISTS slack_handled_events (key TEXT PRIMARY KEY, owner TEXT NOT NULL, status TEXT NOT NULL,"
    " claimed_at REAL NOT NULL, done_at REAL)",
    "CREATE TABLE IF NOT EXISTS slack_school_choices (user_id TEXT PRIMARY KEY, school TEXT NOT NULL, chosen_at REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS slack_feedback (question_id TEXT NOT NULL, user_id TEXT NOT NULL, school TEXT, vote TEXT NOT NULL,"
    " voted_at REAL NOT NULL, PRIMARY KEY (question_id, user_id))",
)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute(ESCALATIONS)
    op.execute("CREATE INDEX IF NOT EXISTS escalations_status ON escalations(status)")
    op.execute(AUDIT[dialect])
    op.execute("CREATE INDEX IF NOT EXISTS escalation_audit_id ON escalation_audit(escalation_id)")
    for statement in SLACK:
        op.execute(statement.replace(" REAL", " DOUBLE PRECISION") if dialect == "postgresql" else statement)
