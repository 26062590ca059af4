"""The base of every error a user or admin can fix; the message says how."""


class PolicyBotError(Exception):
    pass
