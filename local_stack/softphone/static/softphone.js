// The softphone page: the browser is the caller. See local_stack/softphone/browser_call.py for the
// WebSocket protocol; audio is PCM16 mono at the call's rate in 20 ms frames, both ways.

const $ = (id) => document.getElementById(id);
const MIC_CONSTRAINTS = { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 };

// What a test (or a curious person in the console) can read: every event, playback clears and levels.
const softphone = (window.softphone = { events: [], clears: [], micPeak: 0, config: null, stats: () => audio.stats() });

class CallAudio {
  // The AudioContext is created and resumed inside the button's click handler: a user gesture.
  async open() {
    this.ctx = new AudioContext();
    await this.ctx.resume();
    this.stream = await navigator.mediaDevices.getUserMedia({ audio: MIC_CONSTRAINTS });
    await this.ctx.audioWorklet.addModule("/softphone/static/capture-worklet.js");
    await this.ctx.audioWorklet.addModule("/softphone/static/playback-worklet.js");
  }

  // Once the call's rate is known: mic -> capture worklet -> `onFrame`; `play` -> playback -> speakers.
  start(rate, onFrame) {
    const source = this.ctx.createMediaStreamSource(this.stream);
    this.capture = new AudioWorkletNode(this.ctx, "capture", { processorOptions: { targetRate: rate } });
    this.capture.port.onmessage = (e) => onFrame(e.data);
    this.capture.onprocessorerror = () => console.error("the microphone worklet failed");
    // Chromium renders only what leads to the destination: a muted path keeps capture running.
    const sink = new GainNode(this.ctx, { gain: 0 });
    source.connect(this.capture).connect(sink).connect(this.ctx.destination);
    this.playback = new AudioWorkletNode(this.ctx, "playback", { numberOfInputs: 0, outputChannelCount: [1], processorOptions: { sourceRate: rate } });
    this.playback.connect(this.ctx.destination);
    this.pending = new Map();
    this.nextId = 0;
    this.playback.port.onmessage = (e) => this.pending.get(e.data.id)?.(e.data);
  }

  play(pcm) { this.playback?.port.postMessage({ type: "pcm", pcm }, [pcm]); }

  ask(type) {
    if (!this.playback) return Promise.resolve(null);
    const id = ++this.nextId;
    return new Promise((resolve) => {
      this.pending.set(id, (data) => { this.pending.delete(id); resolve(data); });
      this.playback.port.postMessage({ type, id });
    });
  }

  clear() { return this.ask("clear"); }
  stats() { return this.ask("stats"); }

  async close() {
    this.stream?.getTracks().forEach((t) => t.stop());
    await this.ctx?.close();
    this.ctx = this.capture = this.playback = undefined;
  }
}

let audio = new CallAudio();
let socket = null;
let acsPhone = null;
let meterTimer = null;
let latencies = [];
let tools = {};

function note(event) { softphone.events.push({ ...event, receivedAt: performance.now() }); }
let callStartsAt = 0;  // index into softphone.events where this call's events begin

function setState(text) { $("state").textContent = text; }

function inCall(active) {
  $("call").disabled = active || softphone.config.network !== "emulated";
  $("call-me").disabled = active;
  $("hangup").disabled = !active;
  $("profile").disabled = $("voice").disabled = active;
}

function addLine(role, text, atMs, extra = "") {
  const li = document.createElement("li");
  li.className = `${role} ${extra}`.trim();
  const at = document.createElement("span");
  at.className = "at";
  at.textContent = atMs == null ? "" : `${(atMs / 1000).toFixed(1)}s`;
  li.append(at, role === "note" ? text : `${role}: ${text}`);
  $("turns").append(li);
  li.scrollIntoView({ block: "nearest" });
}

function resetView() {
  callStartsAt = softphone.events.length;
  $("turns").replaceChildren();
  $("model").textContent = "–";
  $("latency").textContent = "–";
  $("barge-ins").textContent = "0";
  $("tools").textContent = "–";
  $("why").textContent = "–";
  $("downloads").hidden = true;
  latencies = [];
  tools = {};
}

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function onMessage(data) {
  if (data instanceof ArrayBuffer) { audio.play(data); return; }
  const m = JSON.parse(data);
  note(m);
  switch (m.type) {
    case "state":
      if (m.state !== "watching") setState(m.state === "model" ? "connected" : m.state);
      if (m.state === "model") $("model").textContent = `connecting (profile ${m.profile})`;
      if (m.state === "waiting") addLine("note", `waiting for the call to ${m.userId}`, m.atMs);
      if (m.state === "watching") addLine("note", `call ${m.callConnectionId} placed: the live view follows it`, null);
      if (m.state === "ringing") addLine("note", "ringing", m.atMs);
      if (m.state === "connected") addLine("note", "answered", m.atMs);
      break;
    case "media":
      audio.start(m.sampleRate, (frame) => {
        softphone.micPeak = Math.max(softphone.micPeak, frame.rms);
        $("mic").value = frame.rms;
        if (socket?.readyState === WebSocket.OPEN) socket.send(frame.pcm);
      });
      addLine("note", `media stream connected (${m.sampleRate} Hz)`, null);
      meterTimer = setInterval(async () => { const s = await audio.stats(); if (s) $("speaker").value = s.level; }, 150);
      break;
    case "clear": {  // the media host's StopAudio: the caller barged in
      const at = performance.now();
      const done = await audio.clear();
      // sentAtWallMs: when the server relayed it; clearedAtWallMs: when playback held nothing any more
      softphone.clears.push({ ms: performance.now() - at, held: done?.held ?? 0, sentAtWallMs: m.atWallMs, clearedAtWallMs: Date.now() });
      break;
    }
    case "turn":
      addLine(m.role, m.text, m.atMs, m.interrupted ? "interrupted" : "");
      break;
    case "answer":
      $("model").textContent = "live";
      if (m.turnLatencyMs != null) {
        latencies.push(m.turnLatencyMs);
        $("latency").textContent = `${m.turnLatencyMs} ms (median ${median(latencies)} ms)`;
      }
      break;
    case "barge_in":
      $("barge-ins").textContent = String(Number($("barge-ins").textContent) + 1);
      addLine("note", `you interrupted (playback stopped in ${m.reactionMs} ms)`, m.atMs);
      break;
    case "tool":
      tools[m.name] = (tools[m.name] || 0) + 1;
      $("tools").textContent = Object.entries(tools).map(([n, c]) => `${n} ×${c}`).join(", ");
      addLine("note", `tool ${m.name}: ${m.outcome} in ${m.durationMs} ms`, m.atMs);
      break;
    case "media_ended":
      $("why").textContent = m.why;
      break;
    case "ended":
      setState("ended");
      if ($("why").textContent === "–") $("why").textContent = m.why;
      addLine("note", `call ended (${m.why})`, m.atMs);
      if (m.recording) {
        $("recording").href = m.recording;
        $("transcript").href = m.transcript;
        $("downloads").hidden = false;
      }
      break;
    case "error":
      setState(`error: ${m.message}`);
      break;
  }
}

function openSocket(first) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/softphone/ws`);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => { ws.send(JSON.stringify(first)); resolve(ws); };
    ws.onerror = () => reject(new Error("the softphone socket failed"));
    ws.onmessage = (e) => onMessage(e.data);
    ws.onclose = () => { if (socket === ws) finish(); };  // an older call's socket ends nothing of this one
  });
}

async function finish() {
  clearInterval(meterTimer);
  const ending = socket;
  socket = null;
  ending?.close();
  if (audio.playback) softphone.final = await audio.stats();
  await audio.close();
  audio = new CallAudio();
  inCall(false);
}

async function withMic(start) {
  resetView();
  inCall(true);
  try {
    await audio.open();
    await start();
  } catch (err) {
    setState(`error: ${err.message}`);
    await finish();
  }
}

async function post(path, body) {
  const r = await fetch(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body ?? {}) });
  const value = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(value.error || value.message || `${path} answered ${r.status}`);
  return value;
}

const choice = () => ({ profile: $("profile").value, voice: $("voice").value });

$("call").onclick = () => withMic(async () => {
  setState("dialling");
  socket = await openSocket({ type: "call", ...choice() });
});

// The setup guide's flow: an ACS user and token, then the server calls that user.
$("call-me").onclick = () => withMic(async () => {
  setState("getting a token");
  const token = await post("/softphone/token");
  addLine("note", `token issued for ${token.userId}`, null);
  if (softphone.config.network === "emulated") {
    socket = await openSocket({ type: "await", userId: token.userId });
    await waitFor("waiting");
    await post("/softphone/call-me", { userId: token.userId, ...choice() });
    return;
  }
  if (!softphone.config.acsBundle) throw new Error("the ACS Calling SDK bundle is missing: run make setup");
  await audio.close();            // the SDK captures and plays the call itself (WebRTC, with echo cancellation)
  const { connectAcs } = await import("/softphone/static/vendor/acs-calling.js");
  await acsPhone?.dispose().catch(() => {});  // one call agent at a time
  acsPhone = await connectAcs({
    token: token.token,
    displayName: "Softphone",
    onState: (text) => {
      setState(text);
      addLine("note", text, null);
      if (text.startsWith("Disconnected")) finish();  // also closes the live view's socket
    },
    onIncoming: (incoming) => acsPhone.accept(incoming),
  });
  const placed = await post("/softphone/call-me", { userId: token.userId, ...choice() });
  setState("ringing");
  socket = await openSocket({ type: "watch", callConnectionId: placed.callConnectionId });  // the live view
});

function waitFor(state) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const check = () => {
      const events = softphone.events.slice(callStartsAt);
      if (events.some((e) => e.type === "state" && e.state === state)) return resolve();
      const error = events.find((e) => e.type === "error");
      if (error) return reject(new Error(error.message));
      if (performance.now() - started > 10000) return reject(new Error(`no ${state} from the softphone socket`));
      setTimeout(check, 20);
    };
    check();
  });
}

$("hangup").onclick = async () => {
  if (acsPhone) await acsPhone.hangUp();
  else if (socket?.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "hangup" }));
};

async function init() {
  const config = (softphone.config = await (await fetch("/softphone/config")).json());
  for (const [select, values, chosen] of [[$("profile"), config.profiles, config.defaultProfile], [$("voice"), config.voices, config.defaultVoice]]) {
    for (const v of values) select.append(new Option(v, v, false, v === chosen));
  }
  $("network").textContent = config.network === "emulated"
    ? `Emulated ACS: “Call the assistant” rings ${config.number} from a phone number; “Call me” calls you as an ACS user.`
    : "Real ACS: “Call me” issues you an ACS user and has the assistant call you (ACS Calling SDK).";
  inCall(false);
  setState("idle");
}

init().catch((err) => setState(`error: ${err.message}`));
