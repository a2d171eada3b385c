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

from bench.media_load import (
    FILL_FRAMES,
    MODEL_KEY,
    PCM16,
    PCM24,
    REPO,
    BenchModel,
    ByPosition,
    InboundHold,
    ModelConn,
    Options,
    amain,
    every_phase,
    main,
)
from bench.saturation import Step, problems, summary
from bench.tls import LoopbackCert
from media_host.settings import AUDIO_CHUNKS, SOXR_QUALITIES


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


async def test_two_workers_share_the_calls_and_each_reports_its_cost() -> None:
    """MEDIA_WORKERS=2: the bench waits for both workers, and says how the kernel spread the calls."""
    calls = 16  # all in one worker by chance: 2 in 2**16
    options = Options(calls, every_phase(1.0, probes=0, bargein=0), host_settings={"MEDIA_WORKERS": "2"})

    figures = assert_every_frame_through("acs", *await amain("acs", options))

    workers = figures["host"]["workers"]
    assert len(workers) == 2 and sum(w["calls"] for w in workers) == calls
    assert all(w["calls"] > 0 and w["cpu_per_call_second_ms"] > 0 for w in workers)


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
async def test_tls_model_leg_end_to_end_on_either_loop(loop: str) -> None:
    options = Options(2, every_phase(1.0, probes=0, bargein=0), tls=True, host_loop=loop)

    figures = assert_every_frame_through("acs", *await amain("acs", options))

    assert figures["barge_in"] is None  # phase 4 skipped
    assert figures["model_leg_tls"] is True and figures["host_event_loop"] == loop
    assert figures["host"]["model_sockets"] == 2  # each call's first socket: TLS set up and verified
    assert figures["cpu_ms_per_call_second"] > 0 and figures["host"]["rss_kb_per_call"] is not None


async def test_acs_at_16khz_resampled_both_ways_frames_known_by_position() -> None:
    calls = 3
    code, figures = await amain("acs", Options(calls, every_phase(1.0), rate=16_000))

    assert code == 0 and figures is not None
    assert figures["notes"] == []  # nothing logged by the host, nothing left in flight
    assert (figures["sample_rate"], figures["model_sample_rate"]) == (16_000, 24_000)
    assert figures["frames_known_by"] == "position"
    assert figures["host"]["model_sockets"] == calls  # one per call, each opened in its call's turn
    # every 20 ms sent arrives, both ways, none twice
    frames = figures["frames"]
    assert frames["inbound_received"] == frames["inbound_sent"] > 0
    assert frames["outbound_received"] == frames["outbound_sent"] > 0
    assert frames["inbound_lost"] == frames["inbound_duplicated"] == 0
    assert frames["outbound_lost"] == frames["outbound_duplicated"] == 0
    assert 0 < frames["inbound_held_at_end"] <= calls * 3  # the resampler's ~1-2 frames, half an append
    assert frames["outbound_bad"] == {} and frames["acs_other_kinds"] == {}
    # what only tags could tell is not applicable, not 0
    assert frames["outbound_out_of_order"] is frames["foreign_appends"] is frames["untagged_appends"] is None
    # the main figure, and a steady pace to the caller
    assert figures["cpu_ms_per_call_second"] > 0 and figures["cpu_us_per_frame"]["outbound"] is not None
    gap = figures["outbound_gap_p2"]
    assert gap["samples"] > 0 and 19.0 <= gap["p50_ms"] <= 21.0 and gap["max_ms"] < 80
    # latency by position: the resampler's delay included, so above 0 but well under a second
    for phase in ("inbound_p1", "inbound_p2", "inbound_p3", "outbound_p3_idle_queue"):
        latency = figures["latency"][phase]
        assert latency["samples"] > 0 and 0 < latency["p50_ms"] <= latency["max_ms"] < 500
    # phase 4 needs tags: skipped, and said so
    assert "bargein" not in figures["phases"] and figures["barge_in"] is None
    assert set(figures["phases_skipped"]) == {"bargein"}


def test_a_model_socket_out_of_turn_is_nobodys() -> None:
    framing = ByPosition(InboundHold(PCM16, PCM24, "HQ", 40))
    model = BenchModel(MODEL_KEY, PCM24, framing)
    first, second, late = (ModelConn(ws=None, audio=PCM24) for _ in range(3))  # type: ignore[arg-type]

    framing.turn = 0
    framing.socket_opened(model, first)
    framing.socket_opened(model, second)  # call 0 has its socket already
    framing.turn = None
    framing.socket_opened(model, late)  # a reconnect, after every call was dialled

    assert first.call == 0 and second.call is None and late.call is None
    assert model.by_call == {0: first} and framing.out_of_turn == 2


def test_the_replayed_inbound_hold_is_what_16khz_to_24khz_keeps_back() -> None:
    held = {}
    for append_ms in (20, 40):
        hold = InboundHold(PCM16, PCM24, "HQ", append_ms)
        held[append_ms] = {n - hold.delivered(n) for n in range(3, 200)}

    assert held[20] == {1, 2}  # soxr's bursts: nothing, then 1.5 frames
    assert held[40] == {1, 2, 3}  # and the rest of an append's 40 ms


@pytest.mark.parametrize("quality", SOXR_QUALITIES)
def test_the_fill_frames_push_out_whatever_the_host_holds(quality: str) -> None:
    for append_ms in map(int, AUDIO_CHUNKS):
        hold = InboundHold(PCM16, PCM24, quality, append_ms)
        assert all(hold.delivered(n + FILL_FRAMES) >= n for n in range(150)), append_ms


def test_rate_is_for_acs_only() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--provider", "twilio", "--rate", "16"])
    assert exc.value.code == 2


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
