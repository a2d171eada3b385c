#!/bin/sh
# How the caller WAVs in this directory were made (once; they are committed, nothing runs this at test time).
#
# Tools (Debian bookworm): apt-get install -y flite sox   -> flite 2.2-5, sox 14.4.2+git20190427-3.5
# Voice: flite's built-in `slt` (female US English). The offline engine answers with espeak-ng, so the
# caller and the assistant never share a voice.
#
# Each sentence: flite renders 16 kHz mono 16-bit; sox resamples to 24 kHz (the Realtime API's rate,
# sox `rate` default = high quality; -D: no dither, so the output is bit-identical run to run), keeps
# 16-bit mono, and pads 0.5 s of digital silence before and
# 1.0 s after, so a VAD sees a clean leading and trailing edge.
# The true speech start/end in script.json were then measured from the padded 24 kHz WAVs with an
# energy threshold: the first and last 10 ms frame whose RMS is above -45 dBFS
# (measure_speech_bounds in tests/engine/caller.py; tests/engine/test_caller_audio.py re-checks them).
set -eu
cd "$(dirname "$0")"

make() {  # make <file> <text>
    flite -voice slt -t "$2" -o "/tmp/flite_$1"
    sox -D "/tmp/flite_$1" -r 24000 -c 1 -b 16 -e signed-integer "$1" pad 0.5 1.0
    rm -f "/tmp/flite_$1"
}

make 01_hello_book.wav "Hi, I would like to book a table please."
make 02_party_size.wav "For two people."
make 03_day_time.wav "Friday at seven thirty."
make 04_opening_hours.wav "What time do you open?"
make 05_yes.wav "Yes please."
make 06_goodbye.wav "That's all, thank you. Goodbye."
