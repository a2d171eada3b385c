"""The load bench (`make bench` runs 1 and 50 calls of each provider for 10 s a phase), small enough for
every test run: every tagged frame gets through the host both ways, and the host exits cleanly."""

from __future__ import annotations

import pytest

from bench.media_load import amain


@pytest.mark.parametrize("provider", ["acs", "twilio"])
async def test_every_tagged_frame_gets_through(provider: str) -> None:
    code, figures = await amain(provider, 2, 1.0)

    assert code == 0 and figures is not None
    frames = figures["frames"]
    assert frames["inbound_received"] > 0 and frames["outbound_received"] > 0
    assert frames["inbound_lost"] == frames["outbound_lost"] == frames["outbound_out_of_order"] == 0
    assert frames["outbound_bad"] == {} and frames[f"{provider}_other_kinds"] == {}
    assert figures["notes"] == []  # nothing logged by the host, no hang-ups, nothing left in flight
    if provider == "twilio":
        marks = figures["twilio_marks"]
        assert marks["received"] == frames["outbound_received"]  # a mark after every frame
        assert marks["echoed"] + marks["not_echoed_at_end"] == marks["received"]
