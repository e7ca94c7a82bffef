"""The day-2 settings' cross-checks (settings.py calls them): files that exist, the mode they need, and an admin
token that no other credential equals (team tokens and Braze keys never open the admin API)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from proxy.core.day2_files import Malformed, parse_tokens_file, parse_warm_file

if TYPE_CHECKING:
    from proxy.settings.model import Settings

MIN_ADMIN_TOKEN = 16


def check_day2(s: Settings) -> None:
    """Raise ValueError (one line naming the variable, never a value) when the day-2 settings do not fit."""
    tokens, tokens_file, warm_file = s.client_tokens is not None, s.client_tokens_file, s.warm_file
    if tokens and tokens_file is not None:
        raise ValueError("set BRAZE_PROXY_CLIENT_TOKENS or BRAZE_PROXY_CLIENT_TOKENS_FILE, not both")
    for name, path in (("CLIENT_TOKENS_FILE", tokens_file), ("WARM_FILE", warm_file)):
        if path is not None and not Path(path).is_file():
            raise ValueError(f"BRAZE_PROXY_{name}: no such file")
    if warm_file is not None and s.api_key is None:
        raise ValueError("BRAZE_PROXY_WARM_FILE needs BRAZE_PROXY_API_KEY (it warms with the managed key)")
    admin = s.admin_token.get_secret_value() if s.admin_token else None
    others = [t.token for t in s.teams()] + [s.api_key.get_secret_value() if s.api_key else ""]
    if admin is not None and (len(admin) < MIN_ADMIN_TOKEN or admin in others):
        raise ValueError(
            f"BRAZE_PROXY_ADMIN_TOKEN must be at least {MIN_ADMIN_TOKEN} characters and differ from the API key and"
            " every client token"
        )
    check_files(s)


def check_files(s: Settings) -> None:
    """The tokens file and the warm file parse (so `--check` and start-up name a bad line, never a token)."""
    if s.client_tokens_file is not None:
        forbidden = frozenset([s.admin_token.get_secret_value()]) if s.admin_token else frozenset()
        try:
            parse_tokens_file(Path(s.client_tokens_file).read_bytes(), forbidden)
        except OSError as exc:
            raise ValueError(f"BRAZE_PROXY_CLIENT_TOKENS_FILE: cannot read the file ({exc.strerror})") from None
        except Malformed as error:
            raise ValueError(f"BRAZE_PROXY_CLIENT_TOKENS_FILE: {error}") from None
    if s.warm_file is not None:
        parse_warm_file(Path(s.warm_file).read_text(errors="replace"))
