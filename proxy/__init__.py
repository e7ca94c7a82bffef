"""braze-proxy: a caching reverse proxy for Braze's GET /sessions/data_series."""

__version__ = "0.1.0"
