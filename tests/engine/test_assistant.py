"""The Contoso Bistro rules on their own: words in, replies (and tool calls) out."""

from __future__ import annotations

from emulators.realtime.asr import normalise, shared_model
from emulators.realtime.assistant import GREETING, HOURS_ANSWER, Awaiting, Dialog, caller_phrases, words_of


def test_the_bundled_conversation_books_a_table_and_ends_the_call() -> None:
    dialog = Dialog(tools={"end_call"})
    assert "Contoso Bistro" in dialog.greet().text
    replies = [
        dialog.hear(t)
        for t in (
            "hi i would like to book a table please",
            "for two people",
            "friday at seven thirty",
            "what time do you open",
            "yes please",
            "that's all thank you goodbye",
        )
    ]
    assert replies[0].awaiting is Awaiting.PARTY
    assert replies[1].awaiting is Awaiting.DAY_TIME
    assert replies[2].text == "So that's a table for two on Friday at seven thirty. Shall I book it?"
    assert replies[3].text.startswith(HOURS_ANSWER) and replies[3].awaiting is Awaiting.CONFIRM
    assert "table for two on Friday at seven thirty is booked" in replies[4].text
    assert dialog.booked
    assert replies[5].tool_call is not None and replies[5].tool_call.name == "end_call"
    assert all(r.tool_call is None for r in replies[:5])


def test_slots_come_in_any_order_and_from_typed_text() -> None:
    dialog = Dialog()
    reply = dialog.hear("I'd like a table for 4 on Saturday at 8:15 p.m.")
    assert reply.text == "So that's a table for four on Saturday at eight fifteen. Shall I book it?"
    dialog = Dialog()
    assert dialog.hear("tomorrow at half past six").text == "For how many people?"
    assert dialog.hear("three").text == "So that's a table for three tomorrow at six thirty. Shall I book it?"
    dialog = Dialog()
    assert dialog.hear("just me").text == "A table for one. What day and time would you like?"
    assert dialog.hear("seven thirty").text == "At seven thirty. Which day would you like?"
    assert dialog.hear("sunday").awaiting is Awaiting.CONFIRM


def test_closed_days_and_hours_are_refused() -> None:
    dialog = Dialog()
    assert "closed on Mondays" in dialog.hear("a table for two on monday").text
    assert (dialog.booking.day, dialog.awaiting) == (None, Awaiting.DAY)
    assert "five to ten thirty" in dialog.hear("sunday at eleven thirty").text
    assert dialog.booking.day == "sunday" and dialog.booking.time is None
    assert dialog.hear("seven").awaiting is Awaiting.CONFIRM


def test_no_changes_the_booking_before_it_is_made() -> None:
    dialog = Dialog()
    dialog.hear("table for two friday at seven")
    assert dialog.hear("no").awaiting is Awaiting.CHANGE
    reply = dialog.hear("make it eight o'clock")
    assert reply.text == "So that's a table for two on Friday at eight. Shall I book it?"


def test_unclear_words_get_a_short_reprompt_with_the_pending_question() -> None:
    dialog = Dialog()
    dialog.hear("book a table")
    reply = dialog.hear("purple elephant")
    assert reply.text == "Sorry, I didn't catch that. For how many people?"
    assert dialog.hear("").text.startswith("Sorry, I didn't catch that.")


def test_goodbye_without_the_end_call_tool_only_says_goodbye() -> None:
    reply = Dialog(tools=()).hear("bye")
    assert "Goodbye" in reply.text and reply.tool_call is None


def test_transfer_only_when_the_tool_exists() -> None:
    assert Dialog().hear("can i speak to a person").tool_call is None
    reply = Dialog(tools={"transfer_to_agent"}).hear("can i speak to a person")
    assert reply.tool_call is not None and reply.tool_call.name == "transfer_to_agent"


def test_a_confirmation_the_caller_did_not_hear_does_not_book() -> None:
    dialog = Dialog()
    question = dialog.hear("a table for two on friday at seven thirty")
    assert question.awaiting is Awaiting.CONFIRM
    dialog.heard_only(question, len("So that's a table"))  # barge-in before "Shall I book it?"
    reply = dialog.hear("yes")
    assert not dialog.booked and reply.awaiting is Awaiting.CONFIRM


def test_a_recalled_conversation_continues_where_it_was() -> None:
    dialog = Dialog()
    dialog.recall(None, GREETING)
    dialog.recall("a table for two please", "A table for two. What day and time would you like?")
    dialog.recall("friday at seven", "So that's a table for two on Friday at seven. Shall I book it?")
    assert (dialog.booking.party, dialog.booking.day, dialog.booking.time) == (2, "friday", 19 * 60)
    assert dialog.hear("yes").text.startswith("Great, your table for two on Friday at seven is booked.")


def test_a_recalled_answer_that_was_lost_is_given_again_without_a_greeting() -> None:
    dialog = Dialog()
    dialog.recall("a table for two on friday at seven", "So that's a table [cut off: the caller interrupted]")
    assert dialog.awaiting is Awaiting.NOTHING  # "Shall I book it?" was never heard: a "yes" must not book
    again = dialog.prompt()
    assert (
        again.text == "Sorry, we were cut off. So that's a table for two on Friday at seven. Shall I book it?"
    )
    assert again.awaiting is Awaiting.CONFIRM
    assert dialog.prompt().text == "So that's a table for two on Friday at seven. Shall I book it?"


def test_every_word_the_rules_need_is_in_the_recogniser_vocabulary() -> None:
    vocabulary = shared_model().vocabulary
    assert not shared_model().dropped
    assert {w for p in caller_phrases() for w in normalise(p).split()} == vocabulary
    for needed in ("book", "table", "friday", "thirty", "open", "yes", "goodbye", "that's", "o'clock"):
        assert needed in vocabulary
    assert words_of("That's 7:30 P.M.") == ["that's", "7", "30", "pm"]
