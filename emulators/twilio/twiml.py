"""TwiML as Twilio reads it, for the verbs a voice webhook or a call update may answer with
(twilio-openai.md §1.2, §3.6): `<Say>`, `<Connect><Stream>`, `<Dial>`, `<Reject>`, `<Hangup>`.
Any other verb is kept as `Unsupported` (the emulator skips it); a document that is not TwiML
raises `TwimlError`, which Twilio reports as error 12100 and answers with an application error.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass


class TwimlError(ValueError):
    pass


@dataclass(frozen=True)
class Say:
    text: str


@dataclass(frozen=True)
class Stream:
    """`<Connect><Stream>`: a bidirectional media stream; `parameters` come back in `start`."""

    url: str
    parameters: dict[str, str]
    name: str | None = None
    status_callback: str | None = None  # always POSTed: the product asks for nothing else


@dataclass(frozen=True)
class Dial:
    number: str


@dataclass(frozen=True)
class Reject:
    reason: str  # "rejected" | "busy"


@dataclass(frozen=True)
class Hangup:
    pass


@dataclass(frozen=True)
class Unsupported:
    tag: str


Verb = Say | Stream | Dial | Reject | Hangup | Unsupported


def parse(document: bytes | str) -> list[Verb]:
    try:
        root = ET.fromstring(document)
    except ET.ParseError as exc:
        raise TwimlError(f"document parse failure: {exc}") from None
    if root.tag != "Response":
        raise TwimlError(f"the root element is <{root.tag}>, not <Response>")
    return [_verb(element) for element in root]


def _verb(element: ET.Element) -> Verb:
    if element.tag == "Say":
        return Say((element.text or "").strip())
    if element.tag == "Connect" and [child.tag for child in element] == ["Stream"]:
        return _stream(element[0])
    if element.tag == "Dial":
        number = (element.findtext("Number") or element.text or "").strip()
        if not number:
            raise TwimlError("<Dial> without a number")
        return Dial(number)
    if element.tag == "Reject":
        reason = element.get("reason", "rejected")
        if reason not in ("rejected", "busy"):
            raise TwimlError(f"<Reject reason={reason!r}>: only 'rejected' and 'busy' exist")
        return Reject(reason)
    if element.tag == "Hangup":
        return Hangup()
    return Unsupported(element.tag)


def _stream(element: ET.Element) -> Stream:
    url = element.get("url")
    if not url:
        raise TwimlError("<Stream> without a url")
    parameters: dict[str, str] = {}
    for parameter in element.iter("Parameter"):
        name = parameter.get("name")
        if not name:
            raise TwimlError("<Parameter> without a name")
        parameters[name] = parameter.get("value", "")
    return Stream(url, parameters, element.get("name"), element.get("statusCallback"))
