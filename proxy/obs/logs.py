"""Logs: one JSON object a line, on stderr."""

from __future__ import annotations

import json
import logging
import sys
import time

from aiohttp.http_exceptions import HttpProcessingError

# Attributes every LogRecord has; anything else passed with `extra=` is emitted as a field.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD:
                payload[name] = value
        if record.exc_info and record.exc_info[1] is not None:
            payload["error"] = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
            payload["traceback"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str, separators=(",", ":"))


class MalformedRequestFilter(logging.Filter):
    """aiohttp logs a request it cannot parse with a traceback quoting the offending bytes, which may hold a
    credential (an Authorization header, an `api_key` parameter): keep only the kind of error, as a warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            record.msg, record.args, record.exc_info, record.exc_text = "refused a malformed request", (), None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.error = type(error).__name__
            record.status = error.code
        return True


def configure(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log would be one line per request on the hot path: keep it off.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedRequestFilter) for f in server.filters):
        server.addFilter(MalformedRequestFilter())
