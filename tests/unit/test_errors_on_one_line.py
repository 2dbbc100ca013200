"""ErrorsOnOneLine: an error the user can act on is logged on one line; a bug keeps its traceback."""

from __future__ import annotations

import logging

import pytest

from recops.data import DataValidationError
from recops.errors import ErrorsOnOneLine


@pytest.fixture
def logged(caplog):
    name = "recops-test.one-line"
    ErrorsOnOneLine.install(name)
    ErrorsOnOneLine.install(name)  # a second install adds nothing
    logger = logging.getLogger(name)
    assert sum(isinstance(f, ErrorsOnOneLine) for f in logger.filters) == 1

    def log(error: BaseException, message: str) -> logging.LogRecord:
        caplog.clear()
        try:
            raise error
        except BaseException:
            logger.exception(message)
        (record,) = caplog.records
        return record

    yield log
    for f in list(logger.filters):
        logger.removeFilter(f)


def test_a_user_error_loses_its_traceback_and_keeps_its_reason(logged):
    record = logged(DataValidationError("events.csv: file not found"), "Encountered exception")
    assert record.exc_info is None and record.exc_text is None
    assert record.getMessage() == "Encountered exception: DataValidationError: events.csv: file not found"
    assert record.levelno == logging.ERROR


def test_a_reason_already_in_the_message_is_not_repeated(logged):
    error = DataValidationError("events.csv: file not found")
    record = logged(error, f"Encountered exception during execution: {error!r}")
    assert record.getMessage().count("file not found") == 1 and record.exc_info is None


def test_a_bug_keeps_its_traceback(logged):
    record = logged(KeyError("vocab"), "Encountered exception")
    assert record.exc_info is not None and record.getMessage() == "Encountered exception"
