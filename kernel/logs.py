"""Structured logs: one JSON object per line, to stderr and to a file.

Every process of a run (supervisor, zygote, nodes) logs this way, so one file
holds the whole story. Extra fields go in `extra={"fields": {...}}`.
"""

import logging
import os
import sys
import time
from typing import Any

import orjson

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class JsonFormatter(logging.Formatter):
    def __init__(self, component: str) -> None:
        super().__init__()
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "component": self.component,
            "process": record.process,
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
            notes = getattr(record.exc_info[1], "__notes__", None)
            if notes:
                entry["notes"] = list(notes)
        return orjson.dumps(entry, default=str).decode()


def setup_logging(component: str, level: str, file: str | None) -> None:
    """Replace the root logger's handlers with JSON to stderr (and `file`)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    formatter = JsonFormatter(component)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if file:
        os.makedirs(os.path.dirname(os.path.abspath(file)), exist_ok=True)
        handlers.append(logging.FileHandler(file))
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(LEVELS[level])


def log_event(logger: logging.Logger, level: int, event: str, **fields: Any) -> None:
    logger.log(level, event, extra={"fields": fields})
