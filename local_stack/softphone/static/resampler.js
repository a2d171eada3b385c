// A streaming windowed-sinc resampler (any ratio), shared by the capture and playback worklets.
// The low-pass sits just below the lower of the two Nyquist rates, so downsampling the microphone
// to the call's rate does not fold high frequencies back into speech (as nearest-sample picking does).

const ZERO_CROSSINGS = 16;    // each side of the kernel centre, at the cutoff's own rate
const TABLE_STEPS = 512;      // kernel samples per input sample, linearly interpolated between
const PASSBAND = 0.92;        // cutoff as a fraction of the lower Nyquist rate

function kernelTable(cutoff, half) {
  const size = Math.ceil(half * TABLE_STEPS) + 2;
  const table = new Float32Array(size);
  for (let i = 0; i < size; i++) {
    const t = i / TABLE_STEPS;                              // distance from the centre, in input samples
    if (t > half) break;
    const x = Math.PI * cutoff * t;
    const sinc = t === 0 ? 1 : Math.sin(x) / x;
    const w = 0.42 + 0.5 * Math.cos(Math.PI * t / half) + 0.08 * Math.cos(2 * Math.PI * t / half); // Blackman
    table[i] = cutoff * sinc * w;
  }
  return table;
}

export class Resampler {
  constructor(inRate, outRate) {
    this.inRate = inRate;
    this.outRate = outRate;
    this.step = inRate / outRate;                           // input samples per output sample
    this.cutoff = Math.min(1, outRate / inRate) * PASSBAND; // relative to the input's Nyquist rate
    this.half = ZERO_CROSSINGS / this.cutoff;               // kernel half-width, in input samples
    this.table = kernelTable(this.cutoff, this.half);
    this.reset();
  }

  reset() {
    this.buffer = new Float32Array(0);
    this.pos = 0;                                           // next output's centre, as an index into buffer
  }

  // Resample a block; returns the output samples now computable (the kernel needs `half` ahead).
  push(input) {
    const joined = new Float32Array(this.buffer.length + input.length);
    joined.set(this.buffer);
    joined.set(input, this.buffer.length);
    const out = [];
    const { half, table, step } = this;
    while (this.pos + half < joined.length) {
      const centre = this.pos;
      const first = Math.max(0, Math.ceil(centre - half));
      const last = Math.floor(centre + half);
      let acc = 0;
      for (let k = first; k <= last; k++) {
        const d = Math.abs(centre - k) * TABLE_STEPS;
        const i = d | 0;
        acc += joined[k] * (table[i] + (table[i + 1] - table[i]) * (d - i));
      }
      out.push(acc);
      this.pos += step;
    }
    const keep = Math.max(0, Math.floor(this.pos - half));  // older input no output needs any more
    this.buffer = joined.subarray(keep).slice();
    this.pos -= keep;
    return Float32Array.from(out);
  }
}
