"""The bench's target figures: each the median of per-rep ratios of two rows that ran back to back."""

from __future__ import annotations

from bench.__main__ import rotated
from bench.report import Series, paired
from bench.wrk import WrkResult


def series(name: str, rps: list[float]) -> Series:
    return Series(name, "", [WrkResult(rps=r, p50_ms=1.0, p99_ms=1000 / r, requests=int(r), errors=0) for r in rps])


def test_a_ratio_is_taken_within_each_rep_then_the_median() -> None:
    # A neighbour slows the machine by a different amount in each rep, both rows of a rep nearly alike: three
    # reps of five give 0.96; the rows' medians come from differently slowed moments and give 1.03.
    default = series("default", [24_000 * s for s in (1, 0.5, 0.7, 0.9, 0.6)])
    quiet = series("quiet", [25_000 * s for s in (1, 0.55, 0.65, 0.9, 0.6)])
    assert round(paired(default, quiet, "rps"), 4) == 0.96
    assert round(default.median("rps") / quiet.median("rps"), 2) == 1.03
    assert round(paired(default, quiet, "p99_ms"), 4) == round(1 / 0.96, 4)


def test_the_median_is_not_the_best_rep() -> None:
    default = series("default", [9_000, 9_500, 10_000])
    quiet = series("quiet", [10_000, 10_000, 10_000])
    assert paired(default, quiet, "rps") == 0.95


def test_each_block_rotates_so_no_row_always_goes_first() -> None:
    rows = ["ceiling", "default", "quiet", "l1-off"]
    firsts = {rotated(rows, rep)[0] for rep in range(4)}
    assert firsts == set(rows)
    assert all(sorted(rotated(rows, rep)) == sorted(rows) for rep in range(9))
