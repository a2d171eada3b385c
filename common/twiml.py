"""TwiML answers for Twilio's voice webhooks (twilio-openai.md §1.2, §3.6).

Built with ElementTree, so every value is escaped by the serializer, never by hand; a value XML 1.0
cannot carry at all (most control characters, lone surrogates) is refused rather than sent broken.
"""

from __future__ import annotations

import ipaddress
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from common.settings_reader import E164

CONTENT_TYPE = "text/xml"  # Twilio treats a missing Content-Type as an error (11200)
MAX_PARAMETER_CHARS = 500  # name + value of one <Parameter>

_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


STREAM_PATH = "/ws/twilio"  # where the media host takes Twilio's media streams


def websocket_url(url: str) -> str:
    """A base URL as the media socket is dialled at: one copied as https:// (http://) becomes wss:// (ws://)."""
    scheme, sep, rest = url.partition("://")
    return {"https": "wss", "http": "ws"}.get(scheme, scheme) + sep + rest


def stream_url(media_host_url: str) -> str:
    """The URL Twilio dials for a call's media stream, and signs: both planes must derive the same one."""
    parts = urlsplit(websocket_url(media_host_url))  # a query stays, so that connect_stream refuses it
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + STREAM_PATH))


def connect_stream(url: str, parameters: Mapping[str, str], status_callback: str | None = None) -> str:
    """Bridge the call to a bidirectional media stream at `url` (`wss://`, no query string: Twilio
    refuses one, error 31920). Per-call data goes in `parameters`; Twilio hands them back in the
    stream's `start` message. Twilio runs verbs after `<Connect>` only once the socket closes."""
    parts = urlsplit(url)
    secure = parts.scheme == "wss" or (parts.scheme == "ws" and _loopback(parts.hostname))
    if not secure or not parts.netloc or "?" in url or "#" in url:
        raise ValueError(
            "the stream URL must be wss://host/path (ws:// only on this machine, for a stand-in) "
            "without a query string or fragment"
        )
    attributes = {"url": url}
    if status_callback is not None:
        callback = urlsplit(status_callback)
        if callback.scheme not in ("https", "http") or not callback.netloc:
            raise ValueError("the stream status callback must be an http(s) URL")
        attributes |= {"statusCallback": status_callback, "statusCallbackMethod": "POST"}
    response = ET.Element("Response")
    stream = ET.SubElement(ET.SubElement(response, "Connect"), "Stream", _checked(attributes))
    for name, value in parameters.items():
        if not name or len(name) + len(value) >= MAX_PARAMETER_CHARS:
            raise ValueError(
                f"a <Parameter> needs a name, and name + value under {MAX_PARAMETER_CHARS} chars"
            )
        ET.SubElement(stream, "Parameter", _checked({"name": name, "value": value}))
    return _document(response)


def _loopback(host: str | None) -> bool:
    """Twilio itself only dials wss://; a local stand-in of Twilio may dial ws:// on this machine."""
    if host is None:
        return False
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def dial(target: str) -> str:
    """Transfer the call to the E.164 number `target` (the caller's number stays the caller ID)."""
    if not E164.fullmatch(target):
        raise ValueError("the transfer target must be an E.164 number")
    response = ET.Element("Response")
    ET.SubElement(response, "Dial").text = target
    return _document(response)


def reject(reason: Literal["rejected", "busy"] = "rejected") -> str:
    """Refuse a call without answering it (`busy` plays a busy tone, `rejected` a not-in-service one)."""
    response = ET.Element("Response")
    ET.SubElement(response, "Reject", {"reason": reason})
    return _document(response)


def hangup() -> str:
    response = ET.Element("Response")
    ET.SubElement(response, "Hangup")
    return _document(response)


def _checked(attributes: dict[str, str]) -> dict[str, str]:
    for name, value in attributes.items():
        if _NOT_XML.search(name) or _NOT_XML.search(value):
            raise ValueError("a TwiML value holds a character XML cannot carry")
    return attributes


def _document(root: ET.Element) -> str:
    return _DECLARATION + ET.tostring(root, encoding="unicode")
