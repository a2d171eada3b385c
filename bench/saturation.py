"""Saturation sweep: the load bench at a rising number of calls, until a step misses a criterion.

    python -m bench.saturation [--steps 50,100,150,200,300,400,500] [--tls] [--loop uvloop]
        [--seconds 10] [--probes-seconds 0] [--bargein-seconds 0] [--max-others 25] [--json sweep.json]

Each step is one `bench.media_load` run with a fresh media host: phases 1 and 2, phases 3 and 4 only if
asked for. A step passes when no frame is lost (either direction, any phase), the p99 gap between frames to
the caller (phase 2) is at most 40 ms and the p99 inbound latency (caller sends a frame -> the model
receives it) is at most 40 ms in every phase run. The sweep stops at the first step that fails. On a
shared machine a step first waits for the others to go quiet, and one that fails while they were busy
is measured again.

Calls per core = 1000 ms / (the host's CPU ms per call-second, phase 2, at the largest passing step):
the calls one fully busy core would carry at that step's cost per call, i.e. that step's N divided by
the cores the host used. When the host was close to 100% of its one core there, it is what the host
carried; when it was not (the sweep stopped for another reason, e.g. the load generator sharing the
machine ran short), it is an extrapolation: the table shows the host's %core to tell which.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import psutil  # type: ignore[import-untyped]

from bench.media_load import (
    Options,
    add_run_arguments,
    host_settings,
    measure,
    phase_seconds,
    run_in_loop,
    write_json,
)

MAX_GAP_P99_MS = 40.0
MAX_INBOUND_P99_MS = 40.0
DEFAULT_STEPS = (50, 100, 150, 200, 300, 400, 500)
CROWDED_RETRIES = 2  # a failed step measured while others were busy is run again, at most this often
QUIET_WAIT_S = 600.0


def problems(figures: dict[str, Any]) -> list[str]:
    """The criteria a finished run misses (none: it passes)."""
    missed = []
    frames = figures["frames"]
    if lost := frames["inbound_lost"] + frames["outbound_lost"]:
        missed.append(f"{lost} frames lost")
    gap = figures["outbound_gap_p2"]["p99_ms"]
    if gap is None or gap > MAX_GAP_P99_MS:
        missed.append(f"outbound gap p99 {gap} ms")
    inbound = worst_inbound_p99(figures)
    if inbound is None or inbound > MAX_INBOUND_P99_MS:
        missed.append(f"inbound latency p99 {inbound} ms")
    return missed


def worst_inbound_p99(figures: dict[str, Any]) -> float | None:
    p99s = [
        s["p99_ms"] for name, s in figures["latency"].items() if name.startswith("inbound") and s["samples"]
    ]
    return max(p99s, default=None)


@dataclass
class Step:
    calls: int
    figures: dict[str, Any] | None
    failure: str | None  # the run itself did not finish, or the host did not exit cleanly

    @property
    def others_peak(self) -> float:
        """The most other processes used in one phase, in % of one core."""
        phases = (self.figures or {}).get("phases", {}).values()
        return max((p["others_cpu_pct_of_one_core"] for p in phases), default=0.0)

    @property
    def missed(self) -> list[str]:
        if self.failure is not None or self.figures is None:
            return [f"run failed: {(self.failure or 'no figures').splitlines()[-1][:160]}"]
        return problems(self.figures)

    def row(self) -> dict[str, Any]:
        """The step's figures that the sweep's table shows."""
        f = self.figures
        if f is None:
            return {"calls": self.calls, "passed": False, "missed": self.missed}
        speaking = f["phases"].get("speaking", {})
        return {
            "calls": self.calls,
            "passed": not self.missed,
            "missed": self.missed,
            "host_cpu_pct_of_one_core": speaking.get("host_cpu_pct_of_one_core"),
            "cpu_ms_per_call_second": f["cpu_ms_per_call_second"],
            "inbound_latency_p99_ms": worst_inbound_p99(f),
            "outbound_gap_p99_ms": f["outbound_gap_p2"]["p99_ms"],
            "frames_lost": f["frames"]["inbound_lost"] + f["frames"]["outbound_lost"],
            "rss_kb_per_call": f["host"]["rss_kb_per_call"],
            "bench_cpu_pct_of_one_core": speaking.get("bench_cpu_pct_of_one_core"),
            "bench_loop_lag_p99_ms": f["bench_self"]["loop_lag"]["p99_ms"],
            "others_cpu_pct_of_one_core": speaking.get("others_cpu_pct_of_one_core"),
        }


def summary(steps: Sequence[Step]) -> dict[str, Any]:
    passed = [s for s in steps if not s.missed]
    failed = next((s for s in steps if s.missed), None)
    best = passed[-1].row() if passed else None
    cost = None if best is None else best["cpu_ms_per_call_second"]
    return {
        "saturation_calls": None if best is None else best["calls"],  # the largest N that met every criterion
        "host_cpu_pct_of_one_core": None if best is None else best["host_cpu_pct_of_one_core"],
        "cpu_ms_per_call_second": cost,
        "calls_per_core": round(1000 / cost) if cost else None,
        "rss_kb_per_call": None if best is None else best["rss_kb_per_call"],
        "first_failure": None if failed is None else {"calls": failed.calls, "missed": failed.missed},
    }


def _cell(value: Any, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


COLUMNS = (  # title, key, decimals
    ("calls", "calls", 0),
    ("host %core", "host_cpu_pct_of_one_core", 1),
    ("cpu ms/call-s", "cpu_ms_per_call_second", 2),
    ("in p99 ms", "inbound_latency_p99_ms", 2),
    ("gap p99 ms", "outbound_gap_p99_ms", 2),
    ("lost", "frames_lost", 0),
    ("KB/call", "rss_kb_per_call", 0),
    ("bench %core", "bench_cpu_pct_of_one_core", 1),
    ("bench lag p99", "bench_loop_lag_p99_ms", 2),
    ("others %core", "others_cpu_pct_of_one_core", 1),
)


def render_row(row: dict[str, Any]) -> str:
    cells = "".join(f"{_cell(row.get(key), digits):>{len(title) + 2}}" for title, key, digits in COLUMNS)
    return cells + "  " + ("pass" if row["passed"] else "FAIL: " + "; ".join(row["missed"]))


def render_header() -> str:
    return "".join(f"{title:>{len(title) + 2}}" for title, _, _ in COLUMNS) + "  verdict"


def render_summary(s: dict[str, Any]) -> str:
    if s["saturation_calls"] is None:
        return "no step met the criteria"
    lines = [
        f"saturation: {s['saturation_calls']} calls met every criterion, the host at "
        f"{s['host_cpu_pct_of_one_core']}% of one core, {s['cpu_ms_per_call_second']} ms CPU per call-second "
        f"-> {s['calls_per_core']} calls per core; {_cell(s['rss_kb_per_call'], 0)} KB RSS per call",
    ]
    if (failure := s["first_failure"]) is not None:
        lines.append(f"first failure: {failure['calls']} calls ({'; '.join(failure['missed'])})")
    else:
        lines.append("every step passed: not saturated yet, add larger steps")
    return "\n".join(lines)


async def wait_for_quiet(max_others: float, limit_s: float = QUIET_WAIT_S) -> None:
    """Until the machine (where nothing of the bench runs between steps) uses under `max_others` % of one
    core for 2 s, or `limit_s` has passed."""
    psutil.cpu_percent()  # starts the first interval
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        await asyncio.sleep(2.0)
        if psutil.cpu_percent() * (os.cpu_count() or 1) < max_others:
            return


async def sweep(provider: str, steps: Sequence[int], template: Options, max_others: float) -> list[Step]:
    done: list[Step] = []
    for calls in steps:
        for attempt in range(1 + CROWDED_RETRIES):
            await wait_for_quiet(max_others)
            outcome = await measure(provider, replace(template, calls=calls))
            step = Step(calls, outcome.figures, outcome.failure)
            crowded = step.others_peak > max_others
            if not (step.missed and crowded) or attempt == CROWDED_RETRIES:
                break
            print(render_row(step.row()) + " (others were busy: measured again)", flush=True)
            gc.collect()
        done.append(step)
        print(render_row(step.row()), flush=True)
        if step.missed:
            if outcome.failure is not None:
                outcome.report_failure()
            break
        gc.collect()  # the step's records, before the next one measures with GC off
    return done


def parse_steps(text: str) -> list[int]:
    steps = [int(part) for part in text.split(",") if part.strip()]
    if not steps or steps != sorted(set(steps)) or not 1 <= steps[0] <= steps[-1] <= 500:
        raise argparse.ArgumentTypeError("rising numbers of calls between 1 and 500, e.g. 50,100,200")
    return steps


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.saturation", description="Saturation sweep of the media host (bench/README.md)."
    )
    parser.add_argument(
        "--steps",
        type=parse_steps,
        default=list(DEFAULT_STEPS),
        help=f"rising numbers of calls (default {','.join(map(str, DEFAULT_STEPS))})",
    )
    parser.add_argument(
        "--max-others",
        type=float,
        default=25.0,
        metavar="PCT",
        help="a step waits until other processes use less than this %% of one core, and a failed step "
        "during which they used more is run again, twice at most (default 25)",
    )
    add_run_arguments(parser, seconds=10.0)
    parser.set_defaults(probes_seconds=0.0, bargein_seconds=0.0)  # no criterion needs phase 3 or 4
    args = parser.parse_args(argv)
    template = Options(
        args.steps[0],
        phase_seconds(parser, args),
        tls=args.tls,
        host_loop=args.loop,
        host_settings=host_settings(parser, args),
    )
    print(render_header(), flush=True)
    steps = run_in_loop(args, sweep(args.provider, args.steps, template, args.max_others))
    result = summary(steps)
    print(render_summary(result))
    write_json(
        args.json,
        {
            "criteria": {
                "frames_lost": 0,
                "outbound_gap_p99_ms_max": MAX_GAP_P99_MS,
                "inbound_latency_p99_ms_max": MAX_INBOUND_P99_MS,
            },
            "options": {
                "provider": args.provider,
                "seconds_per_phase": dict(template.seconds),
                "model_leg_tls": args.tls,
                "host_event_loop": args.loop,
                "bench_event_loop": args.bench_loop,
                "max_others_pct_of_one_core": args.max_others,
            },
            "summary": result,
            "steps": [{**step.row(), "figures": step.figures} for step in steps],
        },
    )
    return 0 if result["saturation_calls"] is not None else 1


if __name__ == "__main__":
    sys.exit(main())
