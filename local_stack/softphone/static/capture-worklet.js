// Microphone -> 20 ms PCM16 frames at the call's rate, posted to the page as transferable buffers.
import { Resampler } from "./resampler.js";

class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const rate = options.processorOptions.targetRate;
    this.resampler = new Resampler(sampleRate, rate);
    this.frameSize = rate / 50;                      // 20 ms
    this.frame = new Int16Array(this.frameSize);
    this.filled = 0;
    this.sumSquares = 0;
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    const mono = new Float32Array(channels[0].length);
    for (const channel of channels) for (let i = 0; i < mono.length; i++) mono[i] += channel[i] / channels.length;
    for (const s of this.resampler.push(mono)) {
      const v = Math.max(-1, Math.min(1, s));
      this.sumSquares += v * v;
      this.frame[this.filled++] = v < 0 ? v * 0x8000 : v * 0x7fff;
      if (this.filled === this.frameSize) {
        const rms = Math.sqrt(this.sumSquares / this.frameSize);
        this.port.postMessage({ pcm: this.frame.buffer, rms }, [this.frame.buffer]);  // detaches it
        this.frame = new Int16Array(this.frameSize);
        this.filled = 0;
        this.sumSquares = 0;
      }
    }
    return true;
  }
}

registerProcessor("capture", CaptureProcessor);
