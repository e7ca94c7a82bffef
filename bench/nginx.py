"""The peer: nginx with `proxy_cache` in front of the stand-in, as a foreground process with a temp prefix.

One worker process (pinned with the other servers), loopback only, no access log, every 200 cached for the
whole run. The stand-in needs a key, so nginx sends a fixed one, as the proxy does in managed-key mode.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Self

from bench.servers import Daemon
from tests.support.procs import Managed

CONF = """\
daemon off;
master_process on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
{user}
events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    proxy_cache_path {prefix}/cache levels=1:2 keys_zone=bench:10m max_size=256m inactive=1d use_temp_path=off;
    keepalive_requests 1000000;

    upstream standin {{
        server 127.0.0.1:{upstream_port};
        keepalive 16;
    }}

    server {{
        listen 127.0.0.1:{port} reuseport;
        location / {{
            proxy_pass http://standin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "Bearer {api_key}";
            proxy_cache bench;
            proxy_cache_key $request_uri;
            proxy_cache_valid 200 1d;
            proxy_cache_lock on;
            proxy_ignore_headers Cache-Control Expires Set-Cookie;
            add_header Cache-Status $upstream_cache_status;
        }}
    }}
}}
"""


def nginx_binary() -> str:
    path = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if path is None:
        raise RuntimeError("nginx not found: apt-get install -y nginx")
    return path


class Nginx(Managed):
    """`nginx -p <temp> -c <temp>/nginx.conf` on 127.0.0.1:`port`, caching `upstream_port`."""

    def __init__(self, port: int, upstream_port: int, api_key: str, cpus: str | None) -> None:
        self.port = port
        self._prefix = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
        self._prefix.chmod(0o755)
        user = "user root root;" if _is_root() else ""  # workers must be able to write the cache dir
        conf = CONF.format(prefix=self._prefix, user=user, upstream_port=upstream_port, port=port, api_key=api_key)
        (self._prefix / "nginx.conf").write_text(conf)
        argv = [nginx_binary(), "-p", str(self._prefix), "-c", str(self._prefix / "nginx.conf"), "-e", "stderr"]
        self.daemon = Daemon("nginx", argv, f"http://127.0.0.1:{port}/", cpus=cpus)

    def start(self) -> Self:
        self.daemon.start()
        return self

    def close(self) -> None:
        self.daemon.close()
        shutil.rmtree(self._prefix, ignore_errors=True)


def _is_root() -> bool:
    import os

    return os.geteuid() == 0
