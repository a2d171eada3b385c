"""The assistant's voice: libespeak-ng in-process (espeakng-loader), 22050 Hz -> soxr HQ -> 24 kHz.

libespeak-ng keeps global state and is not re-entrant, so one process-wide lock serialises every
synthesis (about 5 ms CPU per sentence, so nobody waits long). Synchronous mode: the callback runs
in the calling thread, which is what makes the lock sufficient. Output is deterministic, so the
few distinct sentences of a call are cached.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
import soxr

OUTPUT_RATE = 24_000
AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_DONT_EXIT = 0x8000  # report errors instead of calling exit()
ESPEAK_RATE = 1  # espeak_PARAMETER espeakRATE
CHARS_UTF8 = 1
POS_CHARACTER = 1
DEFAULT_WPM = 175

# The Realtime API's voices onto espeak-ng voice variants (all American English).
VOICES = {
    "alloy": "en-us",
    "ash": "en-us+m3",
    "ballad": "en-us+m5",
    "coral": "en-us+f3",
    "echo": "en-us+m1",
    "sage": "en-us+f2",
    "shimmer": "en-us+f4",
    "verse": "en-us+m2",
    "marin": "en-us+f1",
    "cedar": "en-us+m4",
}

_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class SpeechError(RuntimeError):
    pass


class Espeak:
    """The process's one libespeak-ng; use `voice()` to get it."""

    CACHE_SIZE = 128

    def __init__(self) -> None:
        import espeakng_loader  # noqa: PLC0415 - imported where the library is loaded

        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self._lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self._lib.espeak_Initialize.restype = ctypes.c_int
        self._lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        self._lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self._lib.espeak_SetVoiceByName.restype = ctypes.c_int
        self._lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self._lib.espeak_SetParameter.restype = ctypes.c_int
        self._lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        self._lib.espeak_Synth.restype = ctypes.c_int
        self._lib.espeak_Synchronize.restype = ctypes.c_int
        data_parent = os.path.dirname(espeakng_loader.get_data_path())
        rate = self._lib.espeak_Initialize(
            AUDIO_OUTPUT_SYNCHRONOUS, 0, data_parent.encode(), INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            raise SpeechError(f"espeak_Initialize failed ({rate}) with data in {data_parent}")
        self.native_rate = rate  # 22050
        self._chunks: list[bytes] = []
        self._callback: Any = _SynthCallback(self._on_audio)  # keep a reference: C holds the pointer
        self._lib.espeak_SetSynthCallback(self._callback)
        self._lock = threading.Lock()
        self._current_voice: bytes | None = None
        self._cache: OrderedDict[tuple[str, str, int], bytes] = OrderedDict()

    def _on_audio(self, wav: Any, count: int, _events: Any) -> int:
        if count > 0:
            self._chunks.append(ctypes.string_at(wav, count * 2))
        return 0  # 0: continue

    def synthesize(self, text: str, *, voice: str = "en-us", speed: float = 1.0) -> bytes:
        """PCM16 mono at 24 kHz. Blocking (a few ms per sentence); safe from any thread."""
        wpm = max(80, min(450, round(DEFAULT_WPM * speed)))
        key = (voice, text, wpm)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
            if voice.encode() != self._current_voice:
                if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
                    raise SpeechError(f"espeak-ng has no voice {voice!r}")
                self._current_voice = voice.encode()
            self._lib.espeak_SetParameter(ESPEAK_RATE, wpm, 0)
            self._chunks = []
            encoded = text.encode("utf-8") + b"\0"
            status = self._lib.espeak_Synth(
                encoded, len(encoded), 0, POS_CHARACTER, 0, CHARS_UTF8, None, None
            )
            self._lib.espeak_Synchronize()
            native = b"".join(self._chunks)
            self._chunks = []
            if status != 0:
                raise SpeechError(f"espeak_Synth failed ({status})")
            pcm = soxr.resample(
                np.frombuffer(native, dtype=np.int16), self.native_rate, OUTPUT_RATE, quality="HQ"
            )
            audio = np.asarray(pcm, dtype=np.int16).tobytes()
            self._cache[key] = audio
            if len(self._cache) > self.CACHE_SIZE:
                self._cache.popitem(last=False)
            return audio


_instance: Espeak | None = None
_instance_lock = threading.Lock()


def voice() -> Espeak:
    global _instance  # noqa: PLW0603 - libespeak-ng is one per process whatever we do
    with _instance_lock:
        if _instance is None:
            _instance = Espeak()
        return _instance
