"""The offline realtime engine: the Azure OpenAI Realtime API (GA events) over WebSocket, on a laptop.

It plays a small restaurant reservation assistant (Contoso Bistro) with offline speech only:
webrtcvad + an endpointer for server VAD, pocketsphinx with a domain language model for the
caller's words, keyword rules for the replies, and espeak-ng for the assistant's voice.

    python -m emulators.realtime --port 8765      # then AZURE_OPENAI_ENDPOINT=http://127.0.0.1:8765

The official `openai` SDK connects too (see server.py for the paths): `AsyncOpenAI(api_key=...,
base_url="http://127.0.0.1:8765/v1")`, or `AsyncAzureOpenAI(api_key=..., api_version=...,
azure_endpoint="http://127.0.0.1:8765", websocket_base_url="ws://127.0.0.1:8765/openai")`.

Embedding: `create_app(EngineConfig(...))`, or `EngineServer` (start/close) -> URL.
"""

from .server import ENGINE, Engine, EngineConfig, EngineServer, create_app

__all__ = ["ENGINE", "Engine", "EngineConfig", "EngineServer", "create_app"]
