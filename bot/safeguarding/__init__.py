"""Safeguarding: the gate that decides whether a message is a concern and whose it is, its examples, and the
guidance staff are given (KCSIE)."""
