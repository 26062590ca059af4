"""The base of every error a user or admin can fix; the message says how."""


class PolicyBotError(Exception):
    pass


class DocumentError(PolicyBotError):
    """A policy file cannot be read; the message names the file and the reason."""
