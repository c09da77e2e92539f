"""Errors meant for the user: their message is one clear sentence, shown as is by the CLI and the pages."""


class UserError(Exception):
    """A failure the user can act on; ``str(err)`` is a complete sentence naming what went wrong."""
