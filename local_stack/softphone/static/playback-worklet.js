// The assistant's PCM16 (at the call's rate) -> the speakers, through a ring buffer at the context's
// rate. `clear` (the media host's StopAudio: the caller barged in) empties it at once. It also taps
// what it plays, so the page can show a level and a test can tell that the assistant was heard.
import { Resampler } from "./resampler.js";

const START_MS = 40;       // jitter allowance before playing a new burst
const STALE_MS = 100;      // a shorter tail with nothing more coming is played anyway
const GAP_MS = 60;         // running dry and then getting more within this is an underrun (a click)

class PlaybackProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.resampler = new Resampler(options.processorOptions.sourceRate, sampleRate);
    this.ring = new Float32Array(sampleRate * 30);
    this.read = 0;
    this.write = 0;
    this.count = 0;
    this.playing = false;
    this.idleFrames = 0;
    this.underruns = 0;
    this.dryAt = -1;           // currentFrame when playback ran dry (-1: not since the last burst)
    this.dropped = 0;
    this.played = 0;           // samples of assistant audio played
    this.heardSumSquares = 0;  // over everything played, for the tap's RMS
    this.windowSumSquares = 0; // since the last stats request
    this.windowN = 0;
    this.port.onmessage = (e) => this.onMessage(e.data);
  }

  onMessage(m) {
    if (m.type === "pcm") {
      const pcm = new Int16Array(m.pcm);
      const floats = new Float32Array(pcm.length);
      for (let i = 0; i < pcm.length; i++) floats[i] = pcm[i] / 0x8000;
      for (const s of this.resampler.push(floats)) this.put(s);
      this.idleFrames = 0;
      if (this.dryAt >= 0 && currentFrame - this.dryAt < (sampleRate * GAP_MS) / 1000) this.underruns++;
      this.dryAt = -1;
    } else if (m.type === "clear") {
      const held = this.count;
      this.read = this.write = this.count = 0;
      this.playing = false;
      this.dryAt = -1;
      this.resampler.reset();
      this.port.postMessage({ type: "cleared", id: m.id, held });
    } else if (m.type === "stats") {
      this.port.postMessage({
        type: "stats", id: m.id, buffered: this.count, played: this.played, underruns: this.underruns,
        dropped: this.dropped, rms: Math.sqrt(this.heardSumSquares / Math.max(1, this.played)),
        level: Math.sqrt(this.windowSumSquares / Math.max(1, this.windowN)),
      });
      this.windowSumSquares = 0;
      this.windowN = 0;
    }
  }

  put(s) {
    if (this.count === this.ring.length) { this.dropped++; return; }   // 30 s behind: drop the newest
    this.ring[this.write] = s;
    this.write = (this.write + 1) % this.ring.length;
    this.count++;
  }

  process(_inputs, outputs) {
    const out = outputs[0][0];
    const startAt = (sampleRate * START_MS) / 1000;
    if (!this.playing && this.count > 0 && (this.count >= startAt || this.idleFrames * out.length >= (sampleRate * STALE_MS) / 1000)) {
      this.playing = true;
    }
    this.idleFrames++;
    for (let i = 0; i < out.length; i++) {
      let s = 0;
      if (this.playing && this.count > 0) {
        s = this.ring[this.read];
        this.read = (this.read + 1) % this.ring.length;
        this.count--;
        this.played++;
        this.heardSumSquares += s * s;
      } else if (this.playing) {
        this.playing = false;        // ran dry: the end of an answer, or an underrun if more comes soon
        this.dryAt = currentFrame + i;
      }
      out[i] = s;
      this.windowSumSquares += s * s;
    }
    this.windowN += out.length;
    return true;
  }
}

registerProcessor("playback", PlaybackProcessor);
