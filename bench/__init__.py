"""The benchmark suite: `python -m bench` (or `make bench`) measures the proxy's hit path side by side with
nginx `proxy_cache` and with the static-bytes ceiling, all on 127.0.0.1. See docs/performance.md.
"""
