"""The settings reference and config/example.env, generated from the Settings model (one source).

`python -m proxy.devtools.settings_reference` rewrites both files; a test checks they are what this module generates.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic.fields import FieldInfo

from proxy.settings.model import ENV_PREFIX, Settings
from proxy.settings.shown import shown_default

# Where each group of settings starts (the model's field order), and its title.
SECTIONS = (
    ("upstream_url", "Upstream (Braze)"),
    ("redis_url", "Cache and Redis"),
    ("reporting_timezone", "Time zone and freshness"),
    ("rate_limit_per_hour", "Upstream budget"),
    ("host", "Server"),
    ("admin_token", "Day-2 operations"),
)
EXAMPLE_HEADER = """\
# braze-proxy settings: copy to .env (or set as environment variables) and adjust.
# Every variable is optional; the values shown are the defaults. `braze-proxy --help` explains each.
# Generated from proxy/settings/model.py by `python -m proxy.devtools.settings_reference`: edit the model.
"""
REFERENCE_HEADER = """\
# Configuration reference

Every setting is an environment variable (or a line of a `.env` file in the working directory). All are
optional; bad values stop start-up with one line naming the variable. `braze-proxy --check` validates a
configuration and exits 0 only if a start would work: it also fails (exit 2, one line each) on
`BRAZE_PROXY_*` variables that are not settings (a typo such as `BRAZE_PROXY_REDIS_URI` would otherwise mean
the in-process store), and on a Redis that does not answer `PING` with the configured credentials within 5
seconds; it says where the cache lives and how long one fill may take (the fill lock and the replicas' wait).
A start-up without `--check` only warns about unknown variables.

This page is generated from `proxy/settings/model.py` by `python -m proxy.devtools.settings_reference`.
"""


def _sections() -> list[tuple[str, list[tuple[str, FieldInfo]]]]:
    starts = dict(SECTIONS)
    out: list[tuple[str, list[tuple[str, FieldInfo]]]] = []
    for name, spec in Settings.model_fields.items():
        if name in starts or not out:
            out.append((starts.get(name, "Settings"), []))
        out[-1][1].append((name, spec))
    return out


def example_env() -> str:
    lines = [EXAMPLE_HEADER]
    for title, fields in _sections():
        lines.append(f"# --- {title} ---\n")
        for name, spec in fields:
            lines.append(f"# {spec.description}\n# {ENV_PREFIX}{name.upper()}={shown_default(spec)}\n")
    return "\n".join(lines)


def markdown_reference() -> str:
    parts = [REFERENCE_HEADER]
    for title, fields in _sections():
        parts.append(f"## {title}\n\n| variable | default | meaning |\n|---|---|---|")
        for name, spec in fields:
            default = shown_default(spec)
            shown = f"`{default}`" if default else "unset"
            description = (spec.description or "").replace("|", "\\|")
            parts.append(f"| `{ENV_PREFIX}{name.upper()}` | {shown} | {description} |")
        parts.append("")
    return "\n".join(parts)


def main(root: Path) -> None:
    (root / "config" / "example.env").write_text(example_env())
    (root / "docs" / "configuration.md").write_text(markdown_reference())


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd())
