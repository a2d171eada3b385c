"""ACS media-stream JSON in, typed events out (no sockets)."""

from __future__ import annotations

import base64
import json

import pytest

from media_host.acs_media import (
    STOP_AUDIO,
    AudioData,
    AudioMetadata,
    DtmfData,
    MalformedMessage,
    UnknownKind,
    audio_frame,
    parse_inbound,
)


def audio(data: str, **extra: object) -> str:
    return json.dumps({"kind": "AudioData", "audioData": {"data": data, **extra}})


def test_audio_data_decodes_pcm() -> None:
    pcm = bytes(range(256)) * 3 + bytes(192)
    b64 = base64.b64encode(pcm).decode()
    message = parse_inbound(audio(b64, participantRawID="4:+15550100", silent=False))
    assert message == AudioData(pcm=pcm)


def test_silent_frame_may_come_without_data() -> None:
    message = parse_inbound(audio("", silent=True))
    assert message == AudioData(pcm=b"")  # the session substitutes a frame of silence


def test_metadata() -> None:
    text = json.dumps(
        {"kind": "AudioMetadata", "audioMetadata": {"subscriptionId": "s1", "encoding": "PCM", "sampleRate": 16000,
                                                    "channels": 1, "length": 640}}
    )  # fmt: skip
    assert parse_inbound(text) == AudioMetadata(16000)


def test_dtmf_and_unknown_kinds() -> None:
    assert parse_inbound('{"kind":"DtmfData","dtmfData":{"data":"5"}}') == DtmfData("5")
    assert parse_inbound('{"kind":"MarkData","markData":{}}') == UnknownKind("MarkData")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{", "not_json"),
        ("[]", "not_object"),
        ("{}", "Object missing required field `kind`"),
        ('{"kind":"AudioData"}', "Object missing required field `audioData`"),
        (audio('"},"x":"'), "audio_not_base64"),  # JSON injection attempt
        (audio("AAAA"), "audio_odd_length"),
        ('{"kind":"AudioData","audioData":{"data":7}}', "audio_not_base64"),
        (audio("\u00e9" * 4), "audio_not_base64"),  # non-ASCII: a ValueError, not a binascii.Error
        ('{"kind":{"a":1}}', "Expected `str`, got `object` at $.kind"),
        ('{"kind":"MarkData\\n"}', "Expected `str` matching regex '^[A-Za-z0-9_.]+\\\\Z' at $.kind"),
        ('{"kind":"' + "K" * 65 + '"}', "Expected `str` of length <= 64 at $.kind"),
        ('{"kind":"MarkData","x":' + "[" * 100_000 + "]" * 100_000 + "}", "too_deep"),
        ('{"kind":"AudioMetadata","audioMetadata":{"sampleRate":11025}}', "unsupported_sample_rate"),
        ('{"kind":"AudioMetadata","audioMetadata":{"sampleRate":16000,"channels":2}}', "unsupported_format"),
        ('{"kind":"DtmfData","dtmfData":{}}', "Object missing required field `data` at $.dtmfData"),
        (
            '{"kind":"DtmfData","dtmfData":{"data":"' + "1" * 17 + '"}}',
            "Expected `str` of length <= 16 at $.dtmfData.data",
        ),
    ],
)
def test_malformed_messages_name_their_reason(text: str, reason: str) -> None:
    with pytest.raises(MalformedMessage) as caught:
        parse_inbound(text)
    assert caught.value.reason == reason


def test_outbound_messages_use_the_documented_pascal_case() -> None:
    frame = json.loads(audio_frame(b"\x01\x00\xff\x7f"))
    assert frame == {
        "Kind": "AudioData",
        "AudioData": {"Data": base64.b64encode(b"\x01\x00\xff\x7f").decode()},
        "StopAudio": None,
    }
    assert json.loads(STOP_AUDIO) == {"Kind": "StopAudio", "AudioData": None, "StopAudio": {}}
