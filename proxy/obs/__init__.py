"""Observability: metric families, per-process stats, JSON logs, tracing."""
