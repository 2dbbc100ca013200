"""One base class for the errors a user can act on.

Every error that a command reports as ``error: <message>`` (exit 2) derives from
:class:`RecopsError`; its message says what is wrong, where, and what to do. Anything else that
escapes a command is a bug and is shown with its traceback, never dressed up as a user error.
"""

from __future__ import annotations


class RecopsError(Exception):
    """A problem with the user's input or environment; the message names it and the remedy."""
