"""One conversation core for every platform, and more than one replica.

- escalations learn their platform, where the member of staff is told, delivery facts, and a lease so that only
  one replica posts an alert at a time;
- the Slack adapter's state becomes the core's (handled events, school choices, feedback with the voted-on
  section), its rows kept as they are (Slack's keys and user ids are unprefixed; Teams' start `teams:`);
- counts of declined questions per week, school and area (never the question).
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    with op.batch_alter_table("escalations") as table:
        table.add_column(sa.Column("platform", sa.String, nullable=False, server_default="slack"))
        table.add_column(sa.Column("reply_to", sa.Text))
        table.add_column(sa.Column("notified_at", sa.String))
        table.add_column(sa.Column("target", sa.Text))
        table.add_column(sa.Column("lease_owner", sa.String))
        table.add_column(sa.Column("lease_until", sa.String))
    op.create_table("handled_events", sa.Column("key", sa.String, primary_key=True), sa.Column("owner", sa.String, nullable=False),
                    sa.Column("status", sa.String, nullable=False), sa.Column("claimed_at", sa.Float, nullable=False),
                    sa.Column("done_at", sa.Float))
    op.create_table("school_choices", sa.Column("user_id", sa.String, primary_key=True), sa.Column("school", sa.String, nullable=False),
                    sa.Column("chosen_at", sa.Float, nullable=False))
    op.create_table("feedback", sa.Column("question_id", sa.String, primary_key=True), sa.Column("user_id", sa.String, primary_key=True),
                    sa.Column("school", sa.String), sa.Column("policy", sa.String), sa.Column("section", sa.String),
                    sa.Column("vote", sa.String, nullable=False), sa.Column("voted_at", sa.Float, nullable=False))
    op.create_table("declines", sa.Column("week", sa.String, primary_key=True), sa.Column("school", sa.String, primary_key=True),
                    sa.Column("area", sa.String, primary_key=True), sa.Column("count", sa.Integer, nullable=False, server_default="0"))
    # the Slack adapter's rows, as they were
    op.execute("INSERT INTO handled_events (key, owner, status, claimed_at, done_at)"
               " SELECT key, owner, status, claimed_at, done_at FROM slack_handled_events")
    op.execute("INSERT INTO school_choices (user_id, school, chosen_at) SELECT user_id, school, chosen_at FROM slack_school_choices")
    op.execute("INSERT INTO feedback (question_id, user_id, school, vote, voted_at)"
               " SELECT question_id, user_id, school, vote, voted_at FROM slack_feedback")
    op.drop_table("slack_handled_events")
    op.drop_table("slack_school_choices")
    op.drop_table("slack_feedback")
