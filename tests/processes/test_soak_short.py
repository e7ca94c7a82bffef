"""The soak (tests/support/soak.py), shortened to about 20 s: mixed load with every kind of fault, no wrong answer,
bounded RSS and file descriptors. The long run is `python -m tests.support.soak --seconds 300`."""

from __future__ import annotations

import pytest

from tests.support.external_tools import require_tool
from tests.support.soak import MiB, soak


async def test_short_soak(capsys: pytest.CaptureFixture[str]) -> None:
    require_tool("redis-server")
    lines: list[str] = []
    report = await soak(20.0, workers=6, log=lines.append)
    with capsys.disabled():
        print(
            f"\n[figure] soak {report.seconds:.0f} s: {report.requests} requests {dict(report.by_status)}, "
            f"{sum(report.errors.values())} errors, RSS growth {report.rss_growth / MiB:.1f} MiB, "
            f"faults {dict(report.faults)}"
        )
    assert report.requests > 1000
    assert len(report.faults) >= 3
    assert not report.errors, lines
    assert report.by_status["200"] > report.requests / 2
    assert report.rss_growth < 20 * MiB, lines
    assert report.fds_end <= report.fds_start + 16, lines
