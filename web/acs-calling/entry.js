// The ACS Calling SDK as the softphone page uses it: answer calls to this browser's ACS identity.
// esbuild bundles it into local_stack/softphone/static/vendor/acs-calling.js at `make setup`; neither the SDK
// nor the bundle is committed, as the SDK's licence does not allow redistributing it.
import { CallClient, Features } from "@azure/communication-calling";
import { AzureCommunicationTokenCredential } from "@azure/communication-common";

// For tests and anything the wrapper below does not cover.
export { CallClient, Features };

const ended = (reason) => `Disconnected: ${reason?.code ?? "?"}/${reason?.subCode ?? "?"}`;

// Resolves once the agent can receive calls; onState gets every step as text, errors as their message.
export async function connectAcs({ token, displayName, onState = () => {}, onIncoming = () => {} }) {
  const callClient = new CallClient();
  let callAgent;
  try {
    // Informational only (headless Chromium calls itself unsupported); it waits for the SDK's config service.
    const environmentInfo = callClient
      .feature(Features.DebugInfo)
      .getEnvironmentInfo()
      .catch(() => undefined);
    const deviceManager = await callClient.getDeviceManager();
    const access = await deviceManager.askDevicePermission({ audio: true, video: false });
    if (!access.audio) throw new Error("microphone permission denied");
    onState("connecting");
    callAgent = await callClient.createCallAgent(new AzureCommunicationTokenCredential(token), { displayName });
    let current;
    const answered = new WeakSet();
    callAgent.on("incomingCall", ({ incomingCall }) => {
      onState("ringing");
      // The caller may give up before we answer; once answered, the call reports its own end.
      incomingCall.on("callEnded", ({ callEndReason }) => {
        if (!answered.has(incomingCall)) onState(ended(callEndReason));
      });
      onIncoming(incomingCall);
    });
    onState("agent ready");
    return {
      environment: await environmentInfo,
      async accept(incomingCall) {
        answered.add(incomingCall);
        try {
          const call = await incomingCall.accept({ audioOptions: { muted: false } });
          current = call;
          call.on("stateChanged", () => {
            onState(call.state === "Disconnected" ? ended(call.callEndReason) : call.state);
            if (call.state === "Disconnected") current = undefined;
          });
          onState(call.state);
          return call;
        } catch (err) {
          onState(`error: ${err.message}`);
          throw err;
        }
      },
      async hangUp() {
        await current?.hangUp();
      },
      async dispose() {
        await callAgent.dispose();
        await callClient.dispose();
      },
    };
  } catch (err) {
    onState(`error: ${err.message}`);
    await callAgent?.dispose().catch(() => {});
    await callClient.dispose().catch(() => {});
    throw err;
  }
}

// What the caller hears from the far end (the SDK plays it itself), e.g. for a level meter;
// null until the call has a remote audio stream (call.on("remoteAudioStreamsUpdated") tells when).
export async function remoteStream(call) {
  const [first] = call.remoteAudioStreams;
  return first ? first.getMediaStream() : null;
}
