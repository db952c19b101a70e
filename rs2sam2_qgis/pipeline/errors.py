"""The engine's two exceptions: bad input (one line: what is wrong and what to do) and cancellation."""


class InputError(ValueError):
    """Bad input. ``str(err)`` is one line saying what is wrong and what to do; the CLI exits with code 2."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class Cancelled(Exception):
    """The run was cancelled through ``is_cancelled()``; nothing was written."""
