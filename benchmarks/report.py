"""Overheads over the bare baseline and the Markdown table."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from harness import BARE, WORKLOADS

RATIO_REFERENCE = "starsessions 2.2.1 (InMemoryStore)"
COLUMNS = (
    "contender",
    "workload",
    "µs/request",
    "overhead µs",
    "overhead ratio vs starsessions",
    "Set-Cookie on read-only",
    "store writes on read-only",
)


def add_overheads(results: Sequence[dict[str, Any]], baseline: str = BARE) -> None:
    """Set `overhead_us` on every row from the baseline row of its workload
    (same process, same run), so each group is compared only with itself."""
    base = {r["workload"]: r["us_per_request"] for r in results if r["contender"] == baseline}
    for r in results:
        r["baseline"] = baseline
        r["overhead_us"] = r["us_per_request"] - base[r["workload"]] if r["workload"] in base else None


def add_ratios(results: Sequence[dict[str, Any]], reference: str = RATIO_REFERENCE) -> None:
    ref = {r["workload"]: r["overhead_us"] for r in results if r["contender"] == reference}
    for r in results:
        ref_us = ref.get(r["workload"])
        ok = r.get("overhead_us") is not None and ref_us
        r["overhead_ratio_vs_starsessions"] = r["overhead_us"] / ref_us if ok else None


def _set_cookie(r: dict[str, Any]) -> str:
    n, total = r["set_cookie_responses"], r["timed_requests"]
    return f"{'yes' if n else 'no'} ({n}/{total})"


def _cells(r: dict[str, Any]) -> list[str]:
    ro = r["workload"] == "read-only"
    overhead = r.get("overhead_us")
    ratio = r.get("overhead_ratio_vs_starsessions")
    if not ro:
        writes = "—"
    elif r["store_writes"] is None:
        writes = "n/a (no server store)"
    else:
        writes = f"{r['store_writes']} ({', '.join(r['store_write_methods'])})"
    return [
        r["contender"],
        r["workload"],
        f"{r['us_per_request']:.1f}",
        "—" if overhead is None else f"{overhead:+.1f}",
        "—" if ratio is None or r["contender"] == r["baseline"] else f"{ratio:.2f}x",
        _set_cookie(r) if ro else "—",
        writes,
    ]


def markdown_table(results: Sequence[dict[str, Any]]) -> str:
    order = list(WORKLOADS)
    rows = sorted(results, key=lambda r: order.index(r["workload"]))  # stable: contender order kept
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    return "\n".join(lines)


def notes(results: Sequence[dict[str, Any]]) -> list[str]:
    """Facts the table has no column for: Set-Cookie on writes, persistence."""
    out: list[str] = []
    for r in results:
        if r["workload"] != "read-modify-write" or r["contender"] == r["baseline"]:
            continue
        line = f"{r['contender']}: Set-Cookie on read-modify-write: {_set_cookie(r)}"
        if r["store_writes"] is not None:
            line += f"; store writes on read-modify-write: {r['store_writes']}"
        if r["state_persisted"] is False:
            line += (
                f"; WARNING: counter advanced {r['counter_advance']} over "
                f"{r['rmw_requests_sent']} requests (state not persisted?)"
            )
        elif r["state_persisted"] is None:
            line += "; counter lives in the cookie, so replaying the setup cookie never advances it"
        out.append(line)
    return out


SERVER_COLUMNS = (
    "contender",
    "workload",
    "µs/request",
    "overhead µs",
    "vs its floor (quartiles)",
    "speed vs peer (quartiles)",
    "Set-Cookie on read-only",
    "store writes on read-only",
)


def _paired(numerators: Sequence[float], denominators: Sequence[float]) -> tuple[float, float, float]:
    """Median and quartiles of per-repeat ratios.

    Repeats are interleaved, so repeat ``i`` of two contenders ran back to back:
    dividing within a repeat cancels the machine's slow drift, which a ratio of
    two medians does not.
    """
    ratios = sorted(n / d for n, d in zip(numerators, denominators, strict=True))
    if len(ratios) < 4:
        median = statistics.median(ratios)
        return median, median, median
    low, mid, high = statistics.quantiles(ratios, n=4)
    return mid, low, high


def add_floor_ratios(results: Sequence[dict[str, Any]], floors: dict[str, str], peers: dict[str, str]) -> None:
    """``floor_ratio``: time over the floor's time; ``peer_speedup``: the peer's time over ours.

    Both are medians of per-repeat ratios (see :func:`_paired`); ``*_quartiles``
    give the spread.
    """
    repeats = {(r["contender"], r["workload"]): r["us_per_request_repeats"] for r in results}
    for r in results:
        floor = floors.get(r["contender"])
        peer = peers.get(r["contender"])
        ours = r["us_per_request_repeats"]
        floor_us = repeats.get((floor, r["workload"])) if floor else None
        peer_us = repeats.get((peer, r["workload"])) if peer else None
        r["floor"], r["peer"] = floor, peer
        r["floor_ratio"] = r["floor_quartiles"] = r["peer_speedup"] = r["peer_quartiles"] = None
        if floor_us:
            r["floor_ratio"], *r["floor_quartiles"] = _paired(ours, floor_us)
        if peer_us:
            r["peer_speedup"], *r["peer_quartiles"] = _paired(peer_us, ours)


def _ratio(value: float | None, quartiles: Sequence[float] | None) -> str:
    if value is None:
        return "—"
    if not quartiles or quartiles[0] == quartiles[1]:
        return f"{value:.2f}x"
    return f"{value:.2f}x ({quartiles[0]:.2f} to {quartiles[1]:.2f})"


def server_table(results: Sequence[dict[str, Any]]) -> str:
    order = list(WORKLOADS)
    rows = sorted(results, key=lambda r: order.index(r["workload"]))
    lines = ["| " + " | ".join(SERVER_COLUMNS) + " |", "|" + "|".join("---" for _ in SERVER_COLUMNS) + "|"]
    for r in rows:
        cells = _cells(r)
        floor = _ratio(r.get("floor_ratio"), r.get("floor_quartiles"))
        peer = _ratio(r.get("peer_speedup"), r.get("peer_quartiles"))
        if peer != "—":
            peer += f" faster than {r['peer']}"
        lines.append("| " + " | ".join([*cells[:4], floor, peer, *cells[5:]]) + " |")
    return "\n".join(lines)
