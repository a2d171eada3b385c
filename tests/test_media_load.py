"""The load bench (`make bench` runs 1 and 50 calls of each provider for 10 s a phase), small enough for
every test run: every tagged frame gets through the host both ways, every barge-in stops the caller's
audio in time and cancels the response, and the host exits cleanly; the same over TLS on the model leg,
on either event loop; and the saturation sweep's criteria."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.media_load import MODEL_KEY, PCM24, REPO, BenchModel, Options, amain, every_phase
from bench.saturation import Step, problems, summary
from bench.tls import LoopbackCert


def assert_every_frame_through(provider: str, code: int, figures: dict[str, Any] | None) -> dict[str, Any]:
    assert code == 0 and figures is not None
    frames = figures["frames"]
    assert frames["inbound_received"] > 0 and frames["outbound_received"] > 0
    assert frames["inbound_lost"] == frames["outbound_lost"] == frames["outbound_out_of_order"] == 0
    assert frames["outbound_bad"] == {} and frames[f"{provider}_other_kinds"] == {}
    assert figures["notes"] == []  # nothing logged by the host, no hang-ups, nothing left in flight
    return figures


@pytest.mark.parametrize("provider", ["acs", "twilio"])
async def test_every_tagged_frame_gets_through(provider: str) -> None:
    figures = assert_every_frame_through(provider, *await amain(provider, Options(2, every_phase(1.0))))

    assert set(figures["phases"]) == {"inbound", "speaking", "probes", "bargein"}
    barge = figures["barge_in"]
    assert barge["attempted"] >= 2  # one per call at least, in a 1 s phase
    assert barge["stopped"] == barge["response_cancel"] == barge["truncated"] == barge["attempted"]
    assert barge["reaction"]["samples"] == barge["attempted"]
    assert barge["late_messages"] == barge["barge_ins_with_late_audio"] == barge["messages_after_stop"] == 0
    assert barge["stops_unmatched"] == 0
    assert barge["truncate_minus_heard"]["max_ms"] <= 20  # the model is never told of audio not yet played
    assert 0 < barge["frames_received"] < barge["frames_sent"]  # heard the start, the rest cut
    assert figures["latency"]["inbound_p4"]["samples"] > 0
    if provider == "twilio":
        frames, marks = figures["frames"], figures["twilio_marks"]
        assert marks["received"] == marks["media"]  # a mark after every message of audio
        assert frames["outbound_received"] >= marks["media"]  # each one a frame or a chunk of them
        assert marks["echoed"] + marks["not_echoed_at_end"] == marks["received"]


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
async def test_tls_model_leg_end_to_end_on_either_loop(loop: str) -> None:
    options = Options(2, every_phase(1.0, probes=0, bargein=0), tls=True, host_loop=loop)

    figures = assert_every_frame_through("acs", *await amain("acs", options))

    assert figures["barge_in"] is None  # phase 4 skipped
    assert figures["model_leg_tls"] is True and figures["host_event_loop"] == loop
    assert figures["host"]["model_sockets"] == 2  # each call's first socket: TLS set up and verified
    assert figures["cpu_ms_per_call_second"] > 0 and figures["host"]["rss_kb_per_call"] is not None


# A fresh interpreter, like the media host: aiohttp's default client context, nothing passed to it.
DIAL = """
import asyncio, sys
import aiohttp
from media_host import event_loop

async def main() -> str:
    async with aiohttp.ClientSession() as http:
        try:
            async with http.get(sys.argv[1] + "/openai/v1/realtime") as resp:
                return str(resp.status)
        except aiohttp.ClientConnectorCertificateError:
            return "untrusted"

print(event_loop.run(main()))
"""


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
async def test_the_host_trusts_the_bench_certificate_through_ssl_cert_file_only(
    tmp_path: Path, loop: str
) -> None:
    cert = LoopbackCert.create(tmp_path)
    model = BenchModel(MODEL_KEY, PCM24)
    url = await model.serve(cert.server_context())
    assert url.startswith("https://127.0.0.1:")
    base = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    answers = []
    try:
        for env in (base, base | {"SSL_CERT_FILE": str(cert.cert_file)}):
            dial = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                DIAL,
                url,
                env=env | {"MEDIA_EVENT_LOOP": loop},
                cwd=REPO,
                stdout=asyncio.subprocess.PIPE,
            )
            out, _ = await asyncio.wait_for(dial.communicate(), timeout=15)
            answers.append(out.decode().strip())
    finally:
        await model.close()

    # verified as ever: refused without the variable, then the model's own answer (no api-key: 401)
    assert answers == ["untrusted", "401"]


def figures_of(
    *, lost: int = 0, gap: float = 21.0, inbound: float = 1.0, cost: float = 4.0
) -> dict[str, Any]:
    return {
        "frames": {"inbound_lost": lost, "outbound_lost": 0},
        "outbound_gap_p2": {"p99_ms": gap},
        "latency": {
            "inbound_p1": {"samples": 10, "p99_ms": 1.0},
            "inbound_p2": {"samples": 10, "p99_ms": inbound},
            "inbound_p3": {"samples": 0, "p99_ms": None},  # phase 3 skipped
            "outbound_p3_idle_queue": {"samples": 0, "p99_ms": None},
        },
        "phases": {
            "speaking": {
                "host_cpu_pct_of_one_core": 60.0,
                "bench_cpu_pct_of_one_core": 50.0,
                "others_cpu_pct_of_one_core": 0.0,
            }
        },
        "cpu_ms_per_call_second": cost,
        "host": {"rss_kb_per_call": 90.0},
        "bench_self": {"loop_lag": {"p99_ms": 2.0}},
    }


def test_saturation_criteria_and_calls_per_core() -> None:
    assert problems(figures_of()) == []
    assert problems(figures_of(lost=3, gap=40.5, inbound=41.0)) == [
        "3 frames lost",
        "outbound gap p99 40.5 ms",
        "inbound latency p99 41.0 ms",
    ]

    steps = [
        Step(100, figures_of(cost=4.2), None),
        Step(150, figures_of(cost=4.0), None),
        Step(200, figures_of(gap=55.0), None),
    ]
    result = summary(steps)

    assert result["saturation_calls"] == 150
    assert result["calls_per_core"] == 250  # 1000 ms / 4.0 ms per call-second at the largest passing N
    assert result["first_failure"] == {"calls": 200, "missed": ["outbound gap p99 55.0 ms"]}
    assert summary([Step(50, None, "boom\nHostFailed: media host exited")])["saturation_calls"] is None
