"""Fake ``flux.message`` (tests only)."""


class Message:
    pass
