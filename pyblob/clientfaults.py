"""uvicorn's log lines for a client's own faults: one warning line each, without a traceback.

uvicorn's WebSocket protocol logs text that is not UTF-8 with `logger.exception` (an ERROR and a
traceback of the decode) before it closes the socket with 1007, as it should. The fault is the
client's, and any client can send it as often as it likes: a line of the error log apiece is
enough, and a traceback in it would look like pyblob's own failure. `quiet_client_faults` gives
uvicorn's error logger a filter that keeps such a record's message, makes it a warning, and drops
its traceback; every other record passes unchanged.
"""

from __future__ import annotations

import logging

CLIENT_FAULTS = frozenset({"Invalid UTF-8 sequence received from client."})


class ClientFaultFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg in CLIENT_FAULTS:
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def quiet_client_faults() -> None:
    """Install the filter on uvicorn's error logger (once per process)."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, ClientFaultFilter) for f in logger.filters):
        logger.addFilter(ClientFaultFilter())
