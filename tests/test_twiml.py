"""TwiML answers: the documented shape, and hostile values carried intact without breaking the XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common import twiml

SETTINGS = settings(max_examples=200, deadline=None, derandomize=True)

STREAM_URL = "wss://media.example.com/ws/twilio"
DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'


def parsed(document: str) -> ET.Element:
    assert document.startswith(DECLARATION)
    root = ET.fromstring(document)
    assert root.tag == "Response"
    return root


def test_content_type() -> None:
    assert twiml.CONTENT_TYPE == "text/xml"


def test_connect_stream_has_twilios_documented_shape() -> None:
    document = twiml.connect_stream(
        STREAM_URL,
        {"callToken": "v1.CA00.1.abc", "profile": "bistro"},
        status_callback="https://api.example.com/api/twilio/stream-status",
    )
    # The twilio 9.13.0 helper writes the same elements and attributes (twilio-openai.md §1.2).
    assert document == (
        DECLARATION + "<Response><Connect>"
        '<Stream url="wss://media.example.com/ws/twilio"'
        ' statusCallback="https://api.example.com/api/twilio/stream-status" statusCallbackMethod="POST">'
        '<Parameter name="callToken" value="v1.CA00.1.abc" /><Parameter name="profile" value="bistro" />'
        "</Stream></Connect></Response>"
    )
    [connect] = parsed(document)
    [stream] = connect
    assert (connect.tag, stream.tag, stream.get("url")) == ("Connect", "Stream", STREAM_URL)
    assert [(p.tag, p.attrib) for p in stream] == [
        ("Parameter", {"name": "callToken", "value": "v1.CA00.1.abc"}),
        ("Parameter", {"name": "profile", "value": "bistro"}),
    ]


def test_connect_stream_without_callback_or_parameters() -> None:
    [connect] = parsed(twiml.connect_stream(STREAM_URL, {}, None))
    [stream] = connect
    assert stream.attrib == {"url": STREAM_URL} and len(stream) == 0


HOSTILE = [
    'a"b',
    "a'b",
    "<Hangup/>",
    '"/><Hangup/><Parameter name="x',
    "&amp; & &#x41;",
    "]]><!--",
    "line\nbreak\r\ttab",
    "  leading and trailing  ",
    "+1 555 ••• 0100",
    "日本語 🙂 é",
    "",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_come_back_intact(value: str) -> None:
    [connect] = parsed(twiml.connect_stream(STREAM_URL, {"caller": value, value or "empty": "x"}, None))
    [stream] = connect
    assert [p.attrib for p in stream] == [
        {"name": "caller", "value": value},
        {"name": value or "empty", "value": "x"},
    ]


@SETTINGS
@given(st.dictionaries(st.text(min_size=1, max_size=40), st.text(max_size=200), max_size=5))
def test_any_representable_parameters_round_trip(parameters: dict[str, str]) -> None:
    try:
        document = twiml.connect_stream(STREAM_URL, parameters, None)
    except ValueError:  # a character XML 1.0 cannot carry: refused, never sent broken
        assert any(twiml._NOT_XML.search(text) for item in parameters.items() for text in item)
        return
    [connect] = parsed(document)
    [stream] = connect
    assert {p.get("name"): p.get("value") for p in stream} == parameters


@pytest.mark.parametrize("value", ["\x00", "a\x1bb", "\ud800", "\ufffe", "\x0c"])
def test_characters_xml_cannot_carry_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="XML cannot carry"):
        twiml.connect_stream(STREAM_URL, {"caller": value}, None)
    with pytest.raises(ValueError, match="XML cannot carry"):
        twiml.connect_stream(STREAM_URL, {value: "x"}, None)


def test_parameter_size_follows_twilios_limit() -> None:
    twiml.connect_stream(STREAM_URL, {"n": "v" * 498}, None)
    with pytest.raises(ValueError, match="under 500"):
        twiml.connect_stream(STREAM_URL, {"n": "v" * 499}, None)
    with pytest.raises(ValueError, match="needs a name"):
        twiml.connect_stream(STREAM_URL, {"": "v"}, None)


@pytest.mark.parametrize(
    "url",
    [
        "https://media.example.com/ws/twilio",
        "ws://media.example.com/ws/twilio",  # plain ws:// only to a stand-in on this machine
        "ws://10.0.0.1/ws/twilio",
        "wss://media.example.com/ws/twilio?callSid=CA1",  # error 31920: per-call data goes in <Parameter>
        "wss://media.example.com/ws/twilio?",
        "wss://media.example.com/ws/twilio#x",
        "wss:///ws/twilio",
        "media.example.com/ws/twilio",
    ],
)
def test_the_stream_url_must_be_wss_without_a_query(url: str) -> None:
    with pytest.raises(ValueError, match="wss://"):
        twiml.connect_stream(url, {}, None)


@pytest.mark.parametrize(
    "url", ["ws://127.0.0.1:8000/ws/twilio", "ws://localhost:8000/ws/twilio", "ws://[::1]/ws/twilio"]
)
def test_a_local_stand_in_may_be_dialled_over_plain_ws(url: str) -> None:
    assert f'url="{url}"' in twiml.connect_stream(url, {})


@pytest.mark.parametrize("callback", ["ftp://x.example/cb", "/api/cb", "https:///cb"])
def test_the_status_callback_must_be_an_http_url(callback: str) -> None:
    with pytest.raises(ValueError, match="status callback"):
        twiml.connect_stream(STREAM_URL, {}, callback)


def test_a_status_callback_may_carry_a_query_and_is_escaped() -> None:
    callback = "https://api.example.com/api/twilio/stream-status?code=a&b=<c>"
    [connect] = parsed(twiml.connect_stream(STREAM_URL, {}, callback))
    assert connect[0].get("statusCallback") == callback


def test_dial_transfers_to_a_number() -> None:
    document = twiml.dial("+15551234567")
    assert document == DECLARATION + "<Response><Dial>+15551234567</Dial></Response>"
    [dial] = parsed(document)
    assert (dial.tag, dial.text, len(dial)) == ("Dial", "+15551234567", 0)


@pytest.mark.parametrize(
    "target", ["", "15551234567", "+1555<Hangup/>", "sip:agent@example.com", "+1 555 123 4567"]
)
def test_dial_refuses_anything_but_e164(target: str) -> None:
    with pytest.raises(ValueError, match=r"E\.164"):
        twiml.dial(target)


def test_reject_and_hangup() -> None:
    assert twiml.reject() == DECLARATION + '<Response><Reject reason="rejected" /></Response>'
    [reject] = parsed(twiml.reject("busy"))
    assert (reject.tag, reject.attrib) == ("Reject", {"reason": "busy"})
    assert twiml.hangup() == DECLARATION + "<Response><Hangup /></Response>"
