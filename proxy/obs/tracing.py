"""Optional OpenTelemetry tracing: spans for a request, its Redis reads and writes, and each call to Braze.

Off unless the standard variables ask for it (`OTEL_TRACES_EXPORTER` other than `none`, or an
`OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`; `OTEL_SDK_DISABLED=true` wins) and the `otel` extra is installed
(`pip install 'braze-proxy[otel]'`). Off, every span is one shared no-op context: nothing is imported, nothing
is allocated. A client's W3C `traceparent` becomes the request span's parent. Span attributes never hold a
credential or a query string.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

log = logging.getLogger("braze_proxy.tracing")

_NULL: AbstractContextManager[Any] = nullcontext()
_tracer: Any = None  # an opentelemetry Tracer while tracing is on


def wanted(environ: Mapping[str, str]) -> str | None:
    """The exporter the environment asks for ("console", "otlp"), or None for no tracing."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return None
    if exporter:
        return exporter.split(",")[0].strip()
    if environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return "otlp"
    return None


def configure(environ: Mapping[str, str]) -> bool:
    """Turn tracing on in this process if the environment asks for it; True if it is on. Never raises: a missing
    extra or an unknown exporter is one warning, and the proxy runs untraced."""
    global _tracer
    exporter_name = wanted(environ)
    if exporter_name is None or _tracer is not None:
        return _tracer is not None
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
    except ImportError:
        log.warning("OTEL_* variables ask for tracing but the otel extra is not installed: running untraced")
        return False
    exporter: SpanExporter
    if exporter_name == "console":
        exporter = ConsoleSpanExporter()
    elif exporter_name == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]
                OTLPSpanExporter,
            )
        except ImportError:
            log.warning("OTEL_TRACES_EXPORTER=otlp needs the otel extra's OTLP exporter: running untraced")
            return False
        exporter = OTLPSpanExporter()
    else:
        log.warning("unknown OTEL_TRACES_EXPORTER: running untraced", extra={"exporter": exporter_name[:40]})
        return False
    provider = TracerProvider(
        resource=Resource.create({"service.name": environ.get("OTEL_SERVICE_NAME") or "braze-proxy"})
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))  # bounded queue; drops rather than blocks
    trace.set_tracer_provider(provider)
    _tracer = trace.get_tracer("braze_proxy")
    log.info("tracing on", extra={"exporter": exporter_name})
    return True


def enabled() -> bool:
    return _tracer is not None


def request_span(name: str, headers: Mapping[str, str]) -> AbstractContextManager[Any]:
    """The span of one request, child of the client's `traceparent` when it sent one."""
    if _tracer is None:
        return _NULL
    from opentelemetry.propagate import extract
    from opentelemetry.trace import SpanKind

    return _tracer.start_as_current_span(name, context=extract(dict(headers)), kind=SpanKind.SERVER)  # type: ignore[no-any-return]


def span(name: str, **attributes: str | int) -> AbstractContextManager[Any]:
    """A child span of the current one (a Redis call, a call to Braze)."""
    if _tracer is None:
        return _NULL
    return _tracer.start_as_current_span(name, attributes=attributes)  # type: ignore[no-any-return]


def annotate(current: Any, attributes: Mapping[str, str | int | None]) -> None:
    """Set attributes on a span from `request_span` (a no-op when tracing is off)."""
    if current is None:
        return
    for name, value in attributes.items():
        if value is not None:
            current.set_attribute(name, value)


def shutdown() -> None:
    """Flush the spans still queued (at exit)."""
    if _tracer is None:
        return
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    flush = getattr(provider, "shutdown", None)
    if flush is not None:
        flush()
