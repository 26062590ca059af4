"""Slack: the adapter (app, listeners, HTTP endpoint), Block Kit rendering, alerts and start-up checks."""
