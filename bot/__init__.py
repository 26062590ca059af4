"""Conversations: the answer pipeline, safeguarding, escalation, and thin chat adapters."""
