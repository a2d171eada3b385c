"""Where ACS sends a call's events and its audio: the callback URL and the media streaming options.

Inbound and outbound calls stream the same way. The transport URL is the only thing that crosses to
the media host, so per-call context (the instructions profile, the model's voice, the caller as
telemetry may show it, ACS's server call id) rides in its query string. The callback URL carries the
caller too: ACS's events do not, and every record of a call carries every dimension known for it.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from azure.communication.callautomation import (
    AudioFormat,
    MediaStreamingAudioChannelType,
    MediaStreamingContentType,
    MediaStreamingOptions,
    StreamingTransportType,
)

from .settings import ControlSettings

CALLBACK_PATH = "/api/callbacks"
MEDIA_PATH = "/ws/media"


def callback_url(settings: ControlSettings, *, caller: str = "") -> str:
    """`caller` as telemetry may show it (masked unless AUDIT_UNMASKED_NUMBERS=true)."""
    return settings.callback_host + CALLBACK_PATH + (f"?{urlencode({'caller': caller})}" if caller else "")


def transport_url(
    settings: ControlSettings,
    *,
    profile: str | None,
    voice: str | None = None,
    caller: str = "",
    server_call_id: str = "",
) -> str:
    parts = urlsplit(settings.media_host_url)
    query = parse_qsl(parts.query, keep_blank_values=True)  # keep whatever the operator put there
    if profile is not None:
        query.append(("profile", profile))
    if voice is not None:  # None: the media host's AOAI_VOICE
        query.append(("voice", voice))
    if caller:  # for the media plane's telemetry: already masked unless AUDIT_UNMASKED_NUMBERS=true
        query.append(("caller", caller))
    if server_call_id:  # for the media plane's telemetry
        query.append(("server_call_id", server_call_id))
    path = parts.path.rstrip("/") + MEDIA_PATH
    return urlunsplit((parts.scheme, parts.netloc, path, urlencode(query), ""))


def media_streaming(
    settings: ControlSettings,
    *,
    profile: str | None,
    voice: str | None = None,
    caller: str = "",
    server_call_id: str = "",
) -> MediaStreamingOptions:
    return MediaStreamingOptions(
        transport_url=transport_url(
            settings, profile=profile, voice=voice, caller=caller, server_call_id=server_call_id
        ),
        transport_type=StreamingTransportType.WEBSOCKET,
        content_type=MediaStreamingContentType.AUDIO,
        audio_channel_type=MediaStreamingAudioChannelType.MIXED,  # one stream: the model hears the call
        start_media_streaming=True,  # otherwise ACS waits for a start_media_streaming() request
        enable_bidirectional=True,  # the model's voice goes back into the call over the same socket
        audio_format=AudioFormat(settings.audio_format),  # pcm24KMono: the model's own rate, no resampling
        enable_dtmf_tones=True,  # keys the caller presses go to the model (menus, booking numbers)
    )
