import signal

# SIGHUP reloads the client tokens file, never stops the process: ignored until the server's handler takes over
# (an ignored signal stays ignored in the workers `--workers N` starts).
signal.signal(signal.SIGHUP, signal.SIG_IGN)

from proxy.cli import main  # noqa: E402 - after the signal: importing takes long enough to be hit by one

raise SystemExit(main())
