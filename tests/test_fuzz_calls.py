"""The socket-level fuzzer (`make fuzz` runs it with 10^5 messages), small enough for every test run."""

from __future__ import annotations

from bench.fuzz import run


async def test_calls_survive_a_stream_of_bad_messages_on_both_sockets() -> None:
    figures = await run(calls=4, messages=6000, seed=7)

    assert figures.failures == []
    assert figures.calls_alive == 4
    assert figures.acs_bad.total() > 1000 and figures.model_bad.total() > 1000
    assert figures.frames_in_ok == figures.acs_valid > 0  # every valid caller frame reached the model, exact
    assert figures.frames_out_ok == figures.model_valid_frames > 0  # and every model frame the caller
    assert figures.host_exit_code == 0
