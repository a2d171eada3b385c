"""Contoso Bistro: the small rule-based reservation assistant the offline engine plays.

It is deliberately dumb and deterministic: keyword rules over the caller's words (so ASR slips such
as a dropped "please" do not matter), three slots (party size, day, time), a confirmation, and a
goodbye that also ends the call through the `end_call` tool when the session declared it.

`CALLER_PHRASES` is what a caller is expected to say; the speech recogniser's domain language model
is built from it, so every word the rules look for must appear there.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

RESTAURANT = "Contoso Bistro"
HOURS_ANSWER = "We are open from five to eleven pm, Tuesday to Sunday."
GREETING = f"Hello, thank you for calling {RESTAURANT}. How can I help you today?"
GOODBYE = f"Thank you for calling {RESTAURANT}. Goodbye!"

NUMBER_WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
}
SPOKEN = {n: w for w, n in NUMBER_WORDS.items()}
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
RELATIVE_DAYS = ("today", "tonight", "tomorrow")
CLOSED_DAYS = ("monday",)
FIRST_SEATING = 17 * 60  # 5 pm
LAST_SEATING = 22 * 60 + 30  # 10:30 pm; we close at 11
MAX_PARTY = 12

YES = {"yes", "yeah", "yep", "sure", "correct", "right", "okay", "ok", "please", "perfect", "great", "fine"}
NO = {"no", "nope", "wrong", "not", "don't", "change"}
GOODBYE_WORDS = {"goodbye", "bye"}
GOODBYE_PHRASES = ("that's all", "that is all", "that's it", "nothing else", "no thanks", "no thank you")
THANKS = {"thank", "thanks"}
HOURS_WORDS = {"open", "opening", "hours", "close", "closing"}
BOOK_WORDS = {"book", "booking", "table", "reservation", "reserve"}
HUMAN_WORDS = {"person", "human", "someone", "somebody", "agent", "manager", "staff", "operator"}
PARTY_NOUNS = {"people", "persons", "guests", "adults"}
MINUTE_WORDS = {"thirty": 30, "fifteen": 15, "o'clock": 0, "forty": 45}


class Awaiting(StrEnum):
    """What the assistant's last question asked for."""

    NOTHING = "nothing"
    PARTY = "party"
    DAY = "day"
    TIME = "time"
    DAY_TIME = "day_time"
    CONFIRM = "confirm"
    CHANGE = "change"
    BOOK_OFFER = "book_offer"
    ANYTHING_ELSE = "anything_else"


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Reply:
    text: str
    awaiting: Awaiting = Awaiting.NOTHING
    question_at: int = -1  # where the question the caller must hear starts in `text` (-1: none)
    tool_call: ToolCall | None = None


@dataclass
class Booking:
    party: int | None = None
    day: str | None = None
    time: int | None = None  # minutes after midnight

    @property
    def complete(self) -> bool:
        return self.party is not None and self.day is not None and self.time is not None

    def describe(self) -> str:
        """'table for two on Friday at seven thirty'."""
        parts = ["table"]
        if self.party is not None:
            parts.append(f"for {say_party(self.party)}")
        if self.day is not None:
            parts.append(say_day(self.day))
        if self.time is not None:
            parts.append(f"at {say_time(self.time)}")
        return " ".join(parts)


def say_party(n: int | None) -> str:
    return SPOKEN.get(n or 0, str(n))


def say_day(day: str | None) -> str:
    if day is None:
        return ""
    return day if day in RELATIVE_DAYS else f"on {day.title()}"


def say_time(minutes: int | None) -> str:
    if minutes is None:
        return ""
    hour, minute = divmod(minutes, 60)
    hour12 = hour - 12 if hour > 12 else hour
    h = SPOKEN.get(hour12, str(hour12))
    if minute == 0:
        return h
    m = {30: "thirty", 15: "fifteen", 45: "forty five"}.get(minute, f"{minute:02d}")
    return f"{h} {m}"


def words_of(text: str) -> list[str]:
    """Lower-case words; digits kept ("7:30" -> "7", "30"); "p.m." -> "pm"; curly quotes folded."""
    text = text.lower().replace("\u2019", "'").replace("p.m.", "pm").replace("a.m.", "am")
    return re.findall(r"[a-z]+(?:'[a-z]+)?|\d+", text)


def number(word: str) -> int | None:
    if word.isdigit():
        return int(word)
    return NUMBER_WORDS.get(word)


@dataclass
class Heard:
    """What one caller turn said, as far as the rules can tell."""

    party: int | None = None
    day: str | None = None
    time: int | None = None
    time_said_am: bool = False
    used: set[int] = field(default_factory=set)  # word indexes consumed by a slot


def extract(words: list[str], awaiting: Awaiting) -> Heard:
    heard = Heard()
    _extract_time(words, awaiting, heard)
    _extract_party(words, awaiting, heard)
    for i, w in enumerate(words):
        day = w[:-1] if w.endswith("s") and w[:-1] in DAYS else w
        if day in DAYS or day in RELATIVE_DAYS:
            heard.day = day
            heard.used.add(i)
    return heard


def _extract_time(words: list[str], awaiting: Awaiting, heard: Heard) -> None:
    for i, w in enumerate(words):
        nxt = words[i + 1] if i + 1 < len(words) else ""
        prev = words[i - 1] if i > 0 else ""
        if w in ("half", "quarter") and nxt in ("past", "to") and i + 2 < len(words):
            hour = number(words[i + 2])
            if hour is not None and 1 <= hour <= 12:
                past = 30 if w == "half" else 15
                if w == "quarter" and nxt == "to":
                    hour, past = hour - 1, 45
                heard.time = _to_minutes(hour, past, words[i + 3 : i + 4] == ["am"])
                heard.used.update(range(i, i + 3))
                return
        hour = number(w)
        if hour is None or not 1 <= hour <= 23:
            continue
        minute: int | None = None
        span = 1
        if nxt in MINUTE_WORDS:
            minute = MINUTE_WORDS[nxt]
            span = 3 if nxt == "forty" and i + 2 < len(words) and words[i + 2] == "five" else 2
        elif nxt.isdigit() and len(nxt) == 2 and int(nxt) < 60:  # "7:30" / "7 30"
            minute = int(nxt)
            span = 2
        after = words[i + span] if i + span < len(words) else ""
        timeish = (
            minute is not None
            or prev in ("at", "around", "about", "by")
            or after in ("pm", "am", "tonight", "evening")
            or (awaiting in (Awaiting.TIME, Awaiting.DAY_TIME) and after not in PARTY_NOUNS)
        )
        if not timeish or (prev == "for" and minute is None):
            continue
        heard.time = _to_minutes(hour, minute or 0, after == "am")
        heard.time_said_am = after == "am"
        heard.used.update(range(i, i + span))
        return


def _to_minutes(hour: int, minute: int, am: bool) -> int:
    if hour < 12 and not am:
        hour += 12  # a restaurant: "seven" is seven in the evening
    return hour * 60 + minute


def _extract_party(words: list[str], awaiting: Awaiting, heard: Heard) -> None:
    text = " ".join(words)
    if re.search(r"\b(just me|only me|myself|just one)\b", text):
        heard.party = 1
        return
    if re.search(r"\b(two of us|me and my \w+|couple)\b", text):
        heard.party = 2
        return
    lone: list[int] = []
    for i, w in enumerate(words):
        n = number(w)
        if n is None or i in heard.used:
            continue
        prev = words[i - 1] if i > 0 else ""
        prev2 = words[i - 2] if i > 1 else ""
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if (
            nxt in PARTY_NOUNS
            or (nxt == "of" and i + 2 < len(words) and words[i + 2] == "us")
            or prev == "for"
            or (prev == "of" and prev2 == "party")
            or (prev in ("be", "are") and prev2 in ("will", "we", "there"))
        ):
            heard.party = n
            heard.used.add(i)
            return
        lone.append(i)
    if len(lone) == 1 and awaiting in (Awaiting.PARTY, Awaiting.CHANGE):
        heard.party = number(words[lone[0]])
        heard.used.add(lone[0])


def _has_phrase(words: list[str], phrases: Iterable[str]) -> bool:
    text = " " + " ".join(words) + " "
    return any(f" {p} " in text for p in phrases)


class Dialog:
    """The assistant's memory of one call: the booking so far and what it last asked."""

    def __init__(self, tools: Collection[str] = ()) -> None:
        self.tools: set[str] = set(tools)
        self.booking = Booking()
        self.booking_active = False
        self.booked = False
        self.awaiting = Awaiting.NOTHING
        self.greeted = False
        self.resuming = False  # the conversation was put back into a new session, which has not spoken yet
        self.last_reply: Reply | None = None

    # -- the replies ----------------------------------------------------------------------------
    def greet(self) -> Reply:
        self.greeted = True
        return self._say(Reply(GREETING, Awaiting.NOTHING, GREETING.index("How")))

    def prompt(self) -> Reply:
        """A response was asked for with nothing new to answer."""
        if not self.greeted:
            return self.greet()
        question = self._next_question()
        if self.resuming:  # the answer the caller was waiting for was lost with the old connection
            prefix = "Sorry, we were cut off. "
            follow = question or Reply("How can I help you?", Awaiting.NOTHING, 0)
            return self._say(Reply(prefix + follow.text, follow.awaiting, len(prefix) + follow.question_at))
        if question is not None:
            return self._say(question)
        text = "Is there anything else I can help you with?"
        return self._say(Reply(text, Awaiting.ANYTHING_ELSE, 0))

    def say(self, text: str) -> Reply:
        """Speak given words (a response's instructions quoted them); the booking state is untouched."""
        return self._say(Reply(text, self.awaiting, -1))

    def tool_result(self, name: str, output: str) -> Reply:
        try:
            failed = isinstance(result := json.loads(output), dict) and "error" in result
        except ValueError:
            failed = False
        if failed:
            text = "Sorry, I could not do that just now. Is there anything else I can help you with?"
        else:
            text = "All done. Is there anything else I can help you with?"
        return self._say(Reply(text, Awaiting.ANYTHING_ELSE, text.index("Is")))

    def hear(self, text: str) -> Reply:
        """One caller turn (a transcript, or a typed message)."""
        self.greeted = True
        words = words_of(text)
        if not words:
            return self._reprompt()
        wordset = set(words)
        heard = extract(words, self.awaiting)
        has_slot = heard.party is not None or heard.day is not None or heard.time is not None
        awaiting = self.awaiting

        if wordset & GOODBYE_WORDS or _has_phrase(words, GOODBYE_PHRASES):
            return self._goodbye()
        if awaiting is Awaiting.ANYTHING_ELSE and wordset & {"no", "nope", "nothing"} and not has_slot:
            return self._goodbye()
        if wordset & HUMAN_WORDS and wordset & {"speak", "talk", "transfer", "connect", "real"}:
            return self._transfer()

        hours = bool(wordset & HOURS_WORDS) and not has_slot
        if awaiting is Awaiting.CONFIRM and not has_slot and not hours:
            if wordset & NO:
                return self._say(Reply("No problem. What would you like to change?", Awaiting.CHANGE, 12))
            if wordset & YES or wordset & {"book", "do"}:
                return self._book()
        contributed = bool(
            has_slot or wordset & BOOK_WORDS or (awaiting is Awaiting.BOOK_OFFER and wordset & YES)
        )
        starting = contributed and not self.booking_active
        if contributed:
            self.booking_active = True
            if self.booked and has_slot:
                self.booked = False  # a change to a made booking: confirm it again
            problem = self._apply(heard)
            if problem is not None:
                return self._say(problem)
        prefix = HOURS_ANSWER + " " if hours else ""
        question = self._next_question(intro=starting and not has_slot) if contributed or hours else None
        if question is not None:
            return self._say(
                Reply(prefix + question.text, question.awaiting, len(prefix) + max(question.question_at, 0))
            )
        if hours:
            text = prefix + "Would you like to book a table?"
            return self._say(Reply(text, Awaiting.BOOK_OFFER, len(prefix)))
        if wordset & THANKS:
            text = "You're welcome. Is there anything else I can help you with?"
            return self._say(Reply(text, Awaiting.ANYTHING_ELSE, text.index("Is")))
        if awaiting is Awaiting.ANYTHING_ELSE and wordset & YES:
            return self._say(Reply("Sure, what else can I do for you?", Awaiting.NOTHING, 6))
        return self._reprompt()

    def heard_only(self, reply: Reply, heard_chars: int) -> None:
        """The caller heard `reply` only up to `heard_chars` (barge-in truncation)."""
        if reply is not self.last_reply or reply.question_at < 0:
            return
        question_len = len(reply.text) - reply.question_at
        if heard_chars < reply.question_at + question_len // 2:
            self.awaiting = Awaiting.NOTHING  # the question was not heard: a "yes" must not book

    def recall(self, said: str | None, answer: str) -> None:
        """A past exchange put back into a new session: the caller's words (if any) and the answer
        the caller heard, so the dialog continues where the call was."""
        if said is not None:
            reply = self.hear(said)
            # the answer may have been cut short (barge-in, or the drop itself): heard as far as it matches
            matching = (n for n, (a, b) in enumerate(zip(reply.text, answer, strict=False)) if a != b)
            self.heard_only(reply, next(matching, min(len(reply.text), len(answer))))
        self.greeted = True
        self.resuming = True

    # -- helpers --------------------------------------------------------------------------------
    def _say(self, reply: Reply) -> Reply:
        self.awaiting = reply.awaiting
        self.last_reply = reply
        self.resuming = False
        return reply

    def _reprompt(self) -> Reply:
        question = self._next_question()
        follow = question.text if question else "How can I help you?"
        prefix = "Sorry, I didn't catch that. "
        awaiting = question.awaiting if question else self.awaiting
        return self._say(Reply(prefix + follow, awaiting, len(prefix)))

    def _goodbye(self) -> Reply:
        call = ToolCall("end_call", {"reason": "caller said goodbye"}) if "end_call" in self.tools else None
        return self._say(Reply(GOODBYE, Awaiting.NOTHING, -1, call))

    def _transfer(self) -> Reply:
        if "transfer_to_agent" not in self.tools:
            text = "I'm sorry, nobody else is available right now. I can help you book a table."
            return self._say(Reply(text, Awaiting.NOTHING, -1))
        summary = "Caller asked to speak to a person"
        if self.booking_active:
            summary += f" about a {self.booking.describe()}"
        call = ToolCall("transfer_to_agent", {"summary": summary + "."})
        return self._say(Reply("Of course. Let me put you through to a member of our team.", tool_call=call))

    def _book(self) -> Reply:
        self.booked = True
        self.booking_active = False
        text = f"Great, your {self.booking.describe()} is booked. Is there anything else I can help you with?"
        return self._say(Reply(text, Awaiting.ANYTHING_ELSE, text.index("Is")))

    def _apply(self, heard: Heard) -> Reply | None:
        if heard.party is not None:
            if not 1 <= heard.party <= MAX_PARTY:
                text = f"Sorry, we can seat up to {SPOKEN[MAX_PARTY]} people. For how many people?"
                return Reply(text, Awaiting.PARTY, text.index("For"))
            self.booking.party = heard.party
        if heard.day is not None:
            if heard.day in CLOSED_DAYS:
                text = f"Sorry, we are closed on Mondays. {HOURS_ANSWER} Which other day would you like?"
                return Reply(text, Awaiting.DAY, text.index("Which"))
            self.booking.day = heard.day
        if heard.time is not None:
            if heard.time_said_am or not FIRST_SEATING <= heard.time <= LAST_SEATING:
                text = "Sorry, we take bookings from five to ten thirty pm. What time would you like?"
                return Reply(text, Awaiting.TIME, text.index("What"))
            self.booking.time = heard.time
        return None

    def _next_question(self, *, intro: bool = False) -> Reply | None:
        if not self.booking_active or self.booked:
            return None
        b = self.booking
        if b.party is None:
            text = "For how many people?"
            if intro:
                text = "I'd be happy to help you book a table. " + text
            return Reply(text, Awaiting.PARTY, text.index("For"))
        if b.day is None and b.time is None:
            text = f"A table for {say_party(b.party)}. What day and time would you like?"
            return Reply(text, Awaiting.DAY_TIME, text.index("What"))
        if b.day is None:
            text = f"At {say_time(b.time)}. Which day would you like?"
            return Reply(text, Awaiting.DAY, text.index("Which"))
        if b.time is None:
            text = f"{say_day(b.day).capitalize()}. And at what time?"
            return Reply(text, Awaiting.TIME, text.index("And"))
        text = f"So that's a {b.describe()}. Shall I book it?"
        return Reply(text, Awaiting.CONFIRM, text.index("Shall"))


# -- what callers say: the recogniser's language model is built from these ------------------------
_CALLER_SENTENCES = """
hi i would like to book a table please
hello i'd like to make a reservation
hi i want to book a table for tonight
can i book a table
could i reserve a table for two people
i would like a table for four on saturday
i need a table for tomorrow night
do you have a table for two at eight
we would like to book a table for six people
yes i'd like to make a booking
for two people
just me
it will be the two of us
there will be four of us
we are three
a party of five
table for two please
friday at seven thirty
on friday at seven thirty please
saturday at eight pm
tomorrow at half past seven
tonight at nine
sunday evening at six o'clock
next wednesday at seven
this thursday at eight fifteen
around seven thirty
what time do you open
when are you open
what are your opening hours
what time do you close
are you open on mondays
are you open today
how late are you open
yes please
yes that's right
yes that's correct
sure go ahead and book it
yeah sounds good
no that's wrong
no i want to change the time
actually make it eight o'clock
no thanks
no thank you that's all
that's all thank you goodbye
thank you very much goodbye
thanks bye
okay bye bye
nothing else thank you
can i speak to a person
i want to talk to a real person
please transfer me to the manager
sorry can you repeat that
i didn't catch that
"""


def caller_phrases() -> list[str]:
    """Sentences for the domain language model: the examples above plus every slot value in context."""
    phrases = [line.strip() for line in _CALLER_SENTENCES.strip().splitlines() if line.strip()]
    for n in range(1, MAX_PARTY + 1):
        phrases += [f"for {SPOKEN[n]} people", f"a table for {SPOKEN[n]}", f"{SPOKEN[n]} people please"]
    for hour in range(1, 13):
        h = SPOKEN[hour]
        phrases += [f"at {h}", f"at {h} thirty", f"{h} o'clock", f"at {h} pm", f"{h} fifteen"]
        phrases += [f"{h} forty five", f"half past {h}"]
    for day in DAYS:
        phrases += [f"on {day}", f"{day} at seven thirty", f"this {day} evening", f"next {day} night"]
    return phrases
