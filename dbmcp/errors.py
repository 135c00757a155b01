"""Errors a tool call can end with. Their message is the one line the caller sees: no traceback, DSN or secret."""


class ToolError(Exception):
    """The call failed (timeout, database unreachable, a database error, a bad argument)."""

    outcome = "error"

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))  # always one line

    @property
    def message(self) -> str:
        return self.args[0]


class Refused(ToolError):
    """A policy said no: a statement that could write, an object outside the allowlist, a missing level."""

    outcome = "refused"
