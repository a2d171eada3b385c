"""What the call core asks the model to say on its own initiative, in the profile's language.

Each is the instruction of one `response.create`, added to the profile's instructions for that
response only: the model keeps its persona and says the line in its own voice. Written in the
language the caller hears, so the model answers in it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Phrases:
    reprompt: str  # the caller has said nothing since the assistant finished
    no_input_goodbye: str  # still nothing after every reprompt: the call ends
    filler: str  # a tool is taking a while
    keys: str  # the keys the caller pressed, as the caller's turn ({keys})
    ending_soon: str  # a minute before MAX_CALL_SECONDS
    time_up_goodbye: str  # at MAX_CALL_SECONDS


PHRASES = {
    "en": Phrases(
        reprompt=(
            "The caller has not said anything for a while. Check in a few words that they are still "
            'there, for example say "Are you still there?", or repeat your last question briefly. Do not '
            "greet again."
        ),
        no_input_goodbye=(
            "The caller has still not said anything. Say: \"I'm sorry, I can't hear you, so I'll end "
            'the call now. Goodbye." Do not call any tool.'
        ),
        filler='Say only: "One moment while I check that."',
        keys="(The caller pressed these keys on the phone's keypad: {keys})",
        ending_soon=(
            "The call will end automatically in about a minute. Say so in one short sentence, such as "
            '"Just so you know, this call will end in about a minute.", then go on with the conversation.'
        ),
        time_up_goodbye=(
            "The call has reached its time limit. Say: \"I'm sorry, we've reached the time limit for "
            'this call. Goodbye." Do not call any tool.'
        ),
    ),
    "ja": Phrases(
        reprompt=(
            "お客様がしばらく何も話していません。まだ電話口にいらっしゃるか短く確認するか、"
            "直前の質問を手短にもう一度尋ねてください。最初の挨拶は繰り返さないでください。"
        ),
        no_input_goodbye=(
            "お客様からまだ応答がありません。「お声が聞こえませんので、通話を終了いたします。失礼いたします。」"
            "と言ってください。ツールは呼び出さないでください。"
        ),
        filler="「少々お待ちください。お調べします。」とだけ言ってください。",
        keys="(お客様が電話のキーパッドで次のキーを押しました: {keys})",
        ending_soon=(
            "この通話はあと約1分で自動的に終了します。「恐れ入りますが、この通話はあと1分ほどで終了いたします。」"
            "と一文で伝え、会話を続けてください。"
        ),
        time_up_goodbye=(
            "通話の制限時間になりました。「申し訳ございませんが、通話の制限時間となりました。失礼いたします。」"
            "と言ってください。ツールは呼び出さないでください。"
        ),
    ),
}
