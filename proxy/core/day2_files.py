"""Pure: the day-2 files as the proxy reads them. The client tokens file (one `name:token[:weight]` a line) and
the warm file (`at HH:MM` and one question a line); every error names a line, never a token."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time

from proxy.core.credentials import Team, parse_client_tokens

MAX_FILE_BYTES = 1_048_576


@dataclass(frozen=True, slots=True)
class Malformed(Exception):
    """What is wrong with the file, and on which line (1-based; 0: the file as a whole). Never holds a token."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}" if self.line else self.reason


def parse_tokens_file(data: bytes, forbidden: frozenset[str] = frozenset()) -> list[Team]:
    """The teams of a tokens file's bytes; raises Malformed naming the first bad line. `forbidden`: tokens no team
    may have (the admin token)."""
    if len(data) > MAX_FILE_BYTES:
        raise Malformed(0, f"larger than {MAX_FILE_BYTES} bytes")
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise Malformed(0, "not UTF-8 text") from None
    teams: list[Team] = []
    names: set[str] = set()
    tokens: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "," in line:
            raise Malformed(number, "one name:token[:weight] entry a line")
        try:
            (team,) = parse_client_tokens(line)
        except ValueError as error:  # names the team or the entry, never the token
            raise Malformed(number, str(error)) from None
        if team.name in names or team.token in tokens:
            raise Malformed(number, "repeats a team name or a token")
        if team.token in forbidden:
            raise Malformed(number, "a team token may not be the admin token")
        names.add(team.name)
        tokens.add(team.token)
        teams.append(team)
    if not teams:
        raise Malformed(0, "no team entries (the list in force stays)")
    return teams


@dataclass(frozen=True, slots=True)
class WarmList:
    at: time  # daily, in the reporting time zone
    questions: list[str]


def parse_warm_file(text: str) -> WarmList:
    """The warm file's time and questions; raises ValueError naming the line."""
    at: time | None = None
    questions: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("at "):
            try:
                at = time.fromisoformat(line.removeprefix("at ").strip())
            except ValueError:
                raise ValueError(f"warm file line {number}: 'at HH:MM[:SS]' expected") from None
        elif line.startswith("/"):
            questions.append(line)
        else:
            raise ValueError(f"warm file line {number}: a question starts with '/'")
    if at is None or not questions:
        raise ValueError("warm file: needs an 'at HH:MM' line and at least one question")
    return WarmList(at, questions)
