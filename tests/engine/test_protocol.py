"""The engine over a real WebSocket on 127.0.0.1: a whole call, barge-in, cancel, truncate, bad input."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import aiohttp
import pytest

from emulators.realtime.assistant import GREETING, HOURS_ANSWER
from media_host import realtime_protocol as rt

from .caller import script
from .conformance import GA_SERVER_EVENTS, problems
from .conftest import Connect, RealtimeClient, StartEngine, connect_to


async def greet(client: RealtimeClient) -> dict[str, Any]:
    await client.update()
    await client.send({"type": "response.create"})
    return await client.wait_for("response.output_audio.delta")


async def say_text(client: RealtimeClient, text: str, responses_before: int) -> str:
    """A typed caller message and a response.create; returns the assistant's words."""
    await client.send(
        {
            "type": "conversation.item.create",
            "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]},
        }
    )
    await client.send({"type": "response.create"})
    response = await client.response_done(responses_before + 1)
    return client.transcript_of(str(response["id"]))


async def test_a_whole_call_is_ga_conformant_and_books_a_table(connect: Connect) -> None:
    client = await connect(pace=0)  # audio as fast as it is made: VAD runs on audio time anyway
    await client.update()
    await client.send({"type": "response.create"})  # the media host's greeting request
    greeting = await client.response_done(1)
    assert client.transcript_of(greeting["id"]) == GREETING

    for n, line in enumerate(script(), start=1):
        await client.append(line.pcm)
        await client.response_done(n + 1)

    assert problems(client.events) == []  # strictly the GA list of protocols.md section 6.6
    assert {e["type"] for e in client.events} <= GA_SERVER_EVENTS

    # six caller turns, each heard and transcribed
    started = client.of_type("input_audio_buffer.speech_started")
    stopped = client.of_type("input_audio_buffer.speech_stopped")
    committed = client.of_type("input_audio_buffer.committed")
    transcripts = client.of_type("conversation.item.input_audio_transcription.completed")
    assert len(started) == len(stopped) == len(committed) == len(transcripts) == 6
    for line, s, e, c, t in zip(script(), started, stopped, committed, transcripts, strict=True):
        assert s["item_id"] == e["item_id"] == c["item_id"] == t["item_id"]
        assert s["audio_start_ms"] < e["audio_end_ms"]
        assert all(k in t["transcript"].split() for k in line.keywords), t["transcript"]
    assert [s["audio_start_ms"] for s in started] == sorted(s["audio_start_ms"] for s in started)

    # every reply completed, and the booking was made with the caller's details
    responses = [e["response"] for e in client.of_type("response.done")]
    assert [r["status"] for r in responses] == ["completed"] * 7
    said = [client.transcript_of(r["id"]) for r in responses]
    assert "table for two on Friday at seven thirty is booked" in said[5]
    assert said[4].startswith(HOURS_ANSWER)
    assert all(client.audio_of(r["id"]) for r in responses)

    # the goodbye ends the call: spoken words and an end_call function call in the same response
    last = responses[-1]
    assert [o["type"] for o in last["output"]] == ["message", "function_call"]
    assert "Goodbye" in said[-1]
    call = client.of_type("response.function_call_arguments.done")
    assert len(call) == 1 and call[0]["name"] == "end_call" and call[0]["response_id"] == last["id"]
    assert json.loads(call[0]["arguments"]) == {"reason": "caller said goodbye"}
    assert last["output"][1]["call_id"] == call[0]["call_id"]
    types = [e["type"] for e in client.events]
    assert types[-1] == "response.done"
    assert types.index("response.function_call_arguments.done") > types.index(
        "response.output_audio.done", len(types) - 20
    )


async def test_barge_in_cancels_the_live_answer_and_answers_the_new_question(connect: Connect) -> None:
    client = await connect(pace=4)  # a 4.6 s greeting stays live for about a second
    first = await greet(client)
    await client.append(script()[3].pcm)  # "What time do you open?" over the greeting

    started = await client.wait_for("input_audio_buffer.speech_started")
    cancelled = await client.response_done(1)
    assert cancelled["id"] == first["response_id"]
    assert cancelled["status"] == "cancelled"
    assert cancelled["status_details"]["reason"] == "turn_detected"
    types = [e["type"] for e in client.events]
    assert types.index("input_audio_buffer.speech_started") < types.index("response.done")
    assert started["audio_start_ms"] > 0

    answer = await client.response_done(2)
    assert answer["status"] == "completed"
    assert client.transcript_of(answer["id"]).startswith(HOURS_ANSWER)
    # the greeting's item keeps only what was said before the caller spoke
    cut = client.transcript_of(cancelled["id"])
    assert GREETING.startswith(cut) and len(cut) < len(GREETING)


async def test_without_interrupt_response_the_answer_waits_for_the_live_one(connect: Connect) -> None:
    client = await connect(pace=4)
    await client.update(
        turn_detection={"type": "server_vad", "create_response": True, "interrupt_response": False}
    )
    await client.send({"type": "response.create"})
    await client.wait_for("response.output_audio.delta")
    await client.append(script()[3].pcm)
    greeting = await client.response_done(1)
    assert greeting["status"] == "completed"
    assert client.transcript_of(greeting["id"]) == GREETING
    answer = await client.response_done(2)
    assert client.transcript_of(answer["id"]).startswith(HOURS_ANSWER)


async def test_response_cancel_stops_the_audio_and_truncate_cuts_the_memory(connect: Connect) -> None:
    client = await connect(pace=1)
    first = await greet(client)
    rid, item_id = first["response_id"], first["item_id"]
    await client.wait_for("response.output_audio.delta", count=5)
    await client.send({"type": "response.cancel", "event_id": "evt_cancel"})
    done = await client.response_done(1)
    assert done["status"] == "cancelled" and done["status_details"]["reason"] == "client_cancelled"
    sent = len(client.audio_of(rid))
    await asyncio.sleep(0.3)
    assert len(client.audio_of(rid)) == sent  # not one delta after the cancel
    assert sent < 48 * 2000  # far less than the 4.6 s greeting

    # the caller heard 400 ms of it: the assistant's memory of the item is cut there
    await client.send(
        {"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": 400}
    )
    truncated = await client.wait_for("conversation.item.truncated")
    assert truncated == {**truncated, "item_id": item_id, "content_index": 0, "audio_end_ms": 400}
    await client.send({"type": "conversation.item.retrieve", "item_id": item_id})
    item = (await client.wait_for("conversation.item.retrieved"))["item"]
    heard = item["content"][0]["transcript"]
    assert item["content"][0]["type"] == "output_audio"
    assert GREETING.startswith(heard) and len(heard) < len(client.transcript_of(rid))

    # beyond the item's audio, and a second cancel, are errors; the session goes on
    await client.send(
        {"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": 9000}
    )
    await client.send({"type": "response.cancel", "event_id": "evt_again"})
    errors = [(await client.wait_for("error", count=n))["error"] for n in (1, 2)]
    assert errors[0]["code"] == "invalid_value" and errors[0]["param"] == "audio_end_ms"
    assert errors[1]["code"] == "response_cancel_not_active" and errors[1]["event_id"] == "evt_again"
    await client.send({"type": "response.create", "response": {"instructions": 'Say "Still here."'}})
    again = await client.response_done(2)
    assert again["status"] == "completed" and client.transcript_of(again["id"]) == "Still here."


async def test_truncating_a_live_item_stops_it(connect: Connect) -> None:
    client = await connect(pace=1)
    first = await greet(client)
    await client.send(
        {
            "type": "conversation.item.truncate",
            "item_id": first["item_id"],
            "content_index": 0,
            "audio_end_ms": 100,
        }
    )
    done = await client.response_done(1)
    assert done["status"] == "cancelled"
    await client.wait_for("conversation.item.truncated")


async def test_a_question_cut_off_before_it_was_heard_is_not_answered_by_yes(connect: Connect) -> None:
    client = await connect(pace=0)
    await client.update()
    question = await say_text(client, "a table for two on friday at seven thirty", 0)
    assert question.endswith("Shall I book it?")
    item_id = client.of_type("response.done")[0]["response"]["output"][0]["id"]
    await client.send(
        {"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": 1200}
    )
    await client.wait_for("conversation.item.truncated")
    again = await say_text(client, "yes", 1)
    assert "booked" not in again and again.endswith("Shall I book it?")
    assert "is booked" in await say_text(client, "yes", 2)


async def test_malformed_client_events_get_errors_and_the_session_goes_on(connect: Connect) -> None:
    client = await connect(pace=0)
    await client.update()
    bad: list[tuple[str | bytes | dict[str, Any], str]] = [
        ("not json", "invalid_json"),
        (b"\x00\x01", "invalid_event"),
        ({"type": 5}, "invalid_event"),
        ({"type": "nope.never", "event_id": "evt_7"}, "unknown_event_type"),
        ({"type": "input_audio_buffer.append", "audio": "***"}, "invalid_value"),
        ({"type": "input_audio_buffer.append", "audio": 5}, "invalid_type"),
        ({"type": "session.update", "session": {"instructions": "x"}}, "missing_required_parameter"),
        (
            {
                "type": "session.update",
                "session": {"type": "realtime", "audio": {"output": {"voice": "robot"}}},
            },
            "invalid_value",
        ),
        (
            {
                "type": "session.update",
                "session": {"type": "realtime", "audio": {"input": {"format": {"type": "audio/pcmu"}}}},
            },
            "invalid_value",
        ),
        (
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 7}}},
                },
            },
            "invalid_value",
        ),
        (
            {
                "type": "conversation.item.create",
                "item": {"type": "message", "role": "user", "content": "hi"},
            },
            "invalid_value",
        ),
        (
            {"type": "conversation.item.create", "item": {"type": "function_call_output", "output": "{}"}},
            "missing_required_parameter",
        ),
        (
            {
                "type": "conversation.item.truncate",
                "item_id": "item_nope",
                "content_index": 0,
                "audio_end_ms": 1,
            },
            "invalid_value",
        ),
        ({"type": "conversation.item.truncate", "item_id": "item_nope"}, "missing_required_parameter"),
        ({"type": "response.cancel"}, "response_cancel_not_active"),
        ({"type": "input_audio_buffer.commit"}, "input_audio_buffer_commit_empty"),
        ({"type": "response.create", "response": "now"}, "invalid_type"),
        # fields no GA session type declares (the beta shape's, a Chat Completions habit) are refused
        (
            {"type": "session.update", "session": {"type": "realtime", "temperature": 0.8}},
            "unknown_parameter",
        ),
        (
            {
                "type": "session.update",
                "session": {"type": "realtime", "audio": {"output": {"format": "pcm16"}}},
            },
            "invalid_type",
        ),
        (
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {"input": {"turn_detection": {"type": "semantic_vad", "threshold": 0.5}}},
                },
            },
            "unknown_parameter",
        ),
        (
            {
                "type": "session.update",
                "session": {"type": "realtime", "tools": [{"type": "function", "name": "f", "strict": True}]},
            },
            "unknown_parameter",
        ),
        (
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "tools": [{"type": "function", "name": "f", "parameters": {"type": "string"}}],
                },
            },
            "invalid_value",
        ),
    ]
    for event, _ in bad:
        if isinstance(event, bytes):
            await client.ws.send_bytes(event)
        elif isinstance(event, str):
            await client.ws.send_str(event)
        else:
            assert isinstance(event, dict)
            await client.send(event)
    await client.send({"type": "response.create"})
    done = await client.response_done(1)

    errors = [e["error"] for e in client.of_type("error")]
    assert [e["code"] for e in errors] == [code for _, code in bad]
    assert all(e["type"] == "invalid_request_error" and e["message"] for e in errors)
    assert errors[3]["event_id"] == "evt_7"
    unknown = [e for e in errors if e["code"] == "unknown_parameter"]
    assert [e["param"] for e in unknown] == [
        "session.temperature",
        "session.audio.input.turn_detection.threshold",
        "session.tools[0].strict",
    ]
    assert unknown[0]["message"] == "Unknown parameter: 'session.temperature'."
    assert done["status"] == "completed" and client.transcript_of(done["id"]) == GREETING
    assert len(client.of_type("session.updated")) == 1  # the bad updates changed nothing
    assert client.of_type("session.updated")[0]["session"]["audio"]["output"]["voice"] == "sage"


async def test_response_create_while_one_is_live_is_refused(connect: Connect) -> None:
    client = await connect(pace=1)
    await greet(client)
    await client.send({"type": "response.create"})
    error = (await client.wait_for("error"))["error"]
    assert error["code"] == "conversation_already_has_active_response"
    await client.send({"type": "response.cancel"})
    await client.response_done(1)


async def test_without_turn_detection_the_client_commits_and_asks(connect: Connect) -> None:
    client = await connect(pace=0)
    await client.update(turn_detection=None)
    line = script()[1]  # "For two people."
    await client.append(line.pcm)
    await client.send({"type": "input_audio_buffer.commit"})
    await client.send({"type": "response.create"})
    done = await client.response_done(1)
    assert client.of_type("input_audio_buffer.speech_started") == []
    transcript = (await client.wait_for("conversation.item.input_audio_transcription.completed"))[
        "transcript"
    ]
    assert all(k in transcript.split() for k in line.keywords)
    assert client.transcript_of(done["id"]) == "A table for two. What day and time would you like?"
    await client.append(script()[0].pcm[:9600])
    await client.send({"type": "input_audio_buffer.clear"})
    await client.wait_for("input_audio_buffer.cleared")
    await client.send({"type": "input_audio_buffer.commit"})
    assert (await client.wait_for("error"))["error"]["code"] == "input_audio_buffer_commit_empty"


async def test_a_function_call_output_is_acknowledged_when_asked(connect: Connect) -> None:
    client = await connect(pace=0)
    await client.update()
    await client.send(
        {
            "type": "conversation.item.create",
            "item": {"type": "function_call_output", "call_id": "call_1", "output": '{"ok": true}'},
        }
    )
    added = await client.wait_for("conversation.item.added")
    assert added["item"]["type"] == "function_call_output" and added["item"]["call_id"] == "call_1"
    await client.send({"type": "response.create"})
    done = await client.response_done(1)
    assert client.transcript_of(done["id"]).startswith("All done.")


async def test_text_only_sessions_answer_in_text(connect: Connect) -> None:
    client = await connect(pace=0)
    await client.update(output_modalities=["text"])
    await client.send(
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "What time do you open?"}],
            },
        }
    )
    await client.send({"type": "response.create", "response": {"metadata": {"turn": "1"}}})
    done = await client.response_done(1)
    text = (await client.wait_for("response.output_text.done"))["text"]
    assert text.startswith(HOURS_ANSWER)
    assert "".join(e["delta"] for e in client.of_type("response.output_text.delta")) == text
    assert client.of_type("response.output_audio.delta") == []
    assert done["metadata"] == {"turn": "1"}


async def test_response_instructions_with_quoted_words_are_spoken(connect: Connect) -> None:
    client = await connect(pace=0)
    await client.update()
    await client.send(
        {"type": "response.create", "response": {"instructions": 'Say exactly "One moment please."'}}
    )
    done = await client.response_done(1)
    assert client.transcript_of(done["id"]) == "One moment please."


async def restore(client: RealtimeClient, turns: list[tuple[str, str]]) -> None:
    """The conversation put back into a new session exactly as the media host does it after a drop."""
    await client.update()
    for role, text in turns:
        await client.ws.send_str(rt.message_item(role, text))
    await client.wait_for("conversation.item.done", count=len(turns))


async def test_a_reconnected_session_continues_where_it_was(connect: Connect) -> None:
    first = await connect(pace=0)
    await greet(first)
    greeting = first.transcript_of((await first.response_done(1))["id"])
    asked = await say_text(first, "A table for two on Friday at seven.", 1)
    assert asked == "So that's a table for two on Friday at seven. Shall I book it?"

    # the socket dropped; a new session (another engine, even) gets the conversation as items
    second = await connect(pace=0)
    await restore(
        second,
        [("assistant", greeting), ("user", "A table for two on Friday at seven."), ("assistant", asked)],
    )
    said = await say_text(second, "Yes.", 0)  # the answer to the question asked before the drop
    assert said.startswith("Great, your table for two on Friday at seven is booked.")


async def test_an_answer_lost_in_the_drop_is_given_again(connect: Connect) -> None:
    client = await connect(pace=0)
    await restore(
        client,
        [
            ("assistant", GREETING),
            ("user", "A table for two on Friday at seven."),
            ("assistant", "So that's a table [cut off: the caller interrupted]"),
        ],
    )
    await client.send({"type": "response.create"})  # the media host asks for the answer that was cut off
    said = client.transcript_of((await client.response_done(1))["id"])
    assert said == "Sorry, we were cut off. So that's a table for two on Friday at seven. Shall I book it?"


async def test_the_socket_door_checks_model_key_and_version(start_engine: StartEngine) -> None:
    server = await start_engine(api_key="engine-key")
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await connect_to(server.url, headers={"api-key": "wrong"})
    assert refused.value.status == 401
    for headers in ({"api-key": "engine-key"}, {"Authorization": "Bearer engine-key"}):
        client = await connect_to(server.url, headers=headers)
        assert (await client.wait_for("session.created"))["session"]["model"] == "gpt-realtime"
        await client.close()
    key = {"api-key": "engine-key"}
    async with aiohttp.ClientSession() as http:
        base = f"{server.url}/openai/v1/realtime"
        async with http.get(base, headers=key) as r:
            assert r.status == 400  # no model
        async with http.get(f"{base}?model=m", headers=key) as r:
            assert r.status == 426  # not a WebSocket upgrade
        # AsyncAzureOpenAI sends its api-version wherever it is pointed, and names the model `deployment`
        async with http.get(f"{base}?api-version=2025-08-28&deployment=m", headers=key) as r:
            assert r.status == 426
        deployment_path = f"{server.url}/openai/realtime"
        async with http.get(f"{deployment_path}?api-version=2025-08-28&deployment=m", headers=key) as r:
            assert r.status == 426
        async with http.get(f"{deployment_path}?deployment=m", headers=key) as r:
            assert r.status == 400  # that path, as Azure's, needs an api-version
        async with http.get(f"{server.url}/v1/realtime?model=m", headers=key) as r:
            assert r.status == 426  # api.openai.com's path
        async with http.get(f"{server.url}/v1/realtime?model=m", headers={"api-key": "wrong"}) as r:
            assert r.status == 401
        async with http.get(f"{server.url}/healthz") as r:
            assert r.status == 200 and (await r.json())["status"] == "ok"


async def test_audio_deltas_are_100_ms_pcm_and_time_the_item(connect: Connect) -> None:
    client = await connect(pace=0)
    await client.update()
    await client.send({"type": "response.create"})
    done = await client.response_done(1)
    deltas = [base64.b64decode(e["delta"]) for e in client.of_type("response.output_audio.delta")]
    assert all(len(d) == 4800 for d in deltas[:-1]) and 0 < len(deltas[-1]) <= 4800
    assert 3.0 < sum(map(len, deltas)) / 48_000 < 7.0  # the greeting lasts a few seconds
    words = "".join(e["delta"] for e in client.of_type("response.output_audio_transcript.delta"))
    assert words == GREETING == client.transcript_of(done["id"])


async def test_a_new_turn_detection_replaces_the_old_one_whole(connect: Connect) -> None:
    client = await connect(pace=0)
    await client.update()
    semantic = {"type": "semantic_vad", "eagerness": "high", "create_response": True}
    session = (await client.update(turn_detection=semantic))["session"]
    assert session["audio"]["input"]["turn_detection"] == semantic  # no server_vad threshold left behind
    assert "id" not in session and "object" not in session  # not in the SDK's session type
