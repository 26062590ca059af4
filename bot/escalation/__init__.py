"""Escalation: the durable record of every concern, its delivery to the right person exactly once, and re-alerting."""
