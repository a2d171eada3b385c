"""Offline speech recognition: pocketsphinx 5 with a small domain language model.

The generic 27 MB language model is slow (RTF 0.2-0.35) and inaccurate on this scenario; a trigram
model built from the assistant's expected caller phrases with a matching cmudict subset is ~5x
cheaper and near exact (see reference/offline-speech.md). It is built once per process, into a
temporary directory, and every session's `Decoder` loads those files (~20 ms).
"""

from __future__ import annotations

import atexit
import logging
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pocketsphinx import Decoder, get_model_path
from pocketsphinx.lm import ArpaBoLM

log = logging.getLogger(__name__)

ASR_RATE = 16_000


def normalise(phrase: str) -> str:
    """Lower case; keep letters, digits and inner apostrophes ("that's"); drop other punctuation."""
    return " ".join(re.findall(r"[a-z0-9]+(?:'[a-z]+)?", phrase.lower()))


@dataclass(frozen=True)
class DomainModel:
    """The language model and pronunciation dictionary files for one phrase list."""

    directory: Path
    lm: Path
    dictionary: Path
    vocabulary: frozenset[str]
    dropped: frozenset[str]  # phrase words the dictionary cannot pronounce

    @classmethod
    def build(cls, phrases: Iterable[str], directory: Path | None = None) -> DomainModel:
        directory = directory or Path(tempfile.mkdtemp(prefix="realtime-engine-lm-"))
        pronunciations: dict[str, list[str]] = {}
        cmudict = Path(get_model_path("en-us/cmudict-en-us.dict"))
        sentences = [normalise(p) for p in phrases]
        wanted = {w for s in sentences for w in s.split()}
        with cmudict.open(encoding="utf-8") as f:
            for line in f:
                head = line.split(" ", 1)[0]
                word = head.split("(", 1)[0]
                if word in wanted:
                    pronunciations.setdefault(word, []).append(line.rstrip("\n"))
        dropped = wanted - pronunciations.keys()
        if dropped:
            log.warning("domain LM: no pronunciation for %s; dropped", sorted(dropped))
        known = [" ".join(w for w in s.split() if w in pronunciations) for s in sentences]
        corpus = "\n".join(s for s in known if s) + "\n"
        lm = ArpaBoLM(text=corpus, add_start=True, case="lower")  # add_start: else no </s>, no decoder
        lm.compute()
        lm_path = directory / "domain.arpa"
        if not lm.write_file(str(lm_path)):
            raise OSError(f"could not write {lm_path}")
        dict_path = directory / "domain.dict"
        dict_path.write_text("\n".join(line for lines in pronunciations.values() for line in lines) + "\n")
        return cls(directory, lm_path, dict_path, frozenset(pronunciations), frozenset(dropped))

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


_shared: DomainModel | None = None
_shared_lock = threading.Lock()


def shared_model() -> DomainModel:
    """The process-wide domain model for the bistro assistant, built on first use."""
    global _shared  # noqa: PLW0603 - one model per process, by design
    with _shared_lock:
        if _shared is None:
            from .assistant import caller_phrases  # noqa: PLC0415 - keeps asr usable on its own

            started = time.process_time()
            _shared = DomainModel.build(caller_phrases())
            atexit.register(_shared.remove)
            log.info(
                "domain LM built: %d words in %.0f ms CPU (%s)",
                len(_shared.vocabulary),
                (time.process_time() - started) * 1000,
                _shared.directory,
            )
        return _shared


class Recognizer:
    """One streaming decoder (one per session: a Decoder is not shareable across threads).

    Feed 16 kHz PCM16 between `start` and `finish`; not thread-safe, call it from one thread at a time.
    """

    def __init__(self, model: DomainModel, *, fwdflat: bool = True) -> None:
        self._decoder = Decoder(
            samprate=ASR_RATE,
            lm=str(model.lm),
            dict=str(model.dictionary),
            fwdflat=fwdflat,
            loglevel="FATAL",
        )
        self.active = False

    def start(self) -> None:
        if self.active:
            self._decoder.end_utt()
        self._decoder.start_utt()
        self.active = True

    def feed(self, pcm16k: bytes) -> None:
        if self.active and pcm16k:
            self._decoder.process_raw(pcm16k, False, False)

    def finish(self) -> str:
        """End the utterance and return its words ("" when nothing was recognised)."""
        if not self.active:
            return ""
        self.active = False
        self._decoder.end_utt()
        hyp = self._decoder.hyp()
        return "" if hyp is None else str(hyp.hypstr).strip()

    def abort(self) -> None:
        if self.active:
            self.active = False
            self._decoder.end_utt()
