"""One base class for the errors a user can act on.

Every error that a command reports as ``error: <message>`` (exit 2) derives from
:class:`RecopsError`; its message says what is wrong, where, and what to do. Anything else that
escapes a command is a bug and is shown with its traceback, never dressed up as a user error.
"""

from __future__ import annotations

import logging


class RecopsError(Exception):
    """A problem with the user's input or environment; the message names it and the remedy."""


class ErrorsOnOneLine(logging.Filter):
    """A logged exception the user can act on, on one line: its message, no traceback.

    Libraries that run recops code log what it raises with the whole traceback: Prefect's flow
    engine logs ~60 lines before ``recops retrain`` prints its one-line ``error:``, BentoML ~25
    for one misspelt request field. :meth:`expected` says which exceptions are the user's to
    act on (by default a :class:`RecopsError`); their record keeps its logger and text, gains
    the reason when the text lacks it (after ``note``), and loses the traceback (``level``, when set, replaces
    the record's level). Any other exception is a bug and keeps its traceback.
    """

    level: int | None = None
    note = ""  # written before the exception's name, e.g. "refused, "

    def expected(self, error: BaseException) -> bool:
        return isinstance(error, RecopsError)

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is None or not self.expected(error):
            return True
        text = record.getMessage()
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        if reason not in text:
            text = f"{text}: {self.note}{type(error).__name__}: {reason}"
        record.msg, record.args, record.exc_info, record.exc_text = text, None, None, None
        if self.level is not None:
            record.levelno, record.levelname = self.level, logging.getLevelName(self.level)
        return True

    @classmethod
    def install(cls, *logger_names: str) -> None:
        """Put one of these filters on each named logger (once: installing again adds none)."""
        for name in logger_names:
            logger = logging.getLogger(name)
            if not any(isinstance(f, cls) for f in logger.filters):
                logger.addFilter(cls())
