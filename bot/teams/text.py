"""A Teams message's text as the words the member of staff typed.

Teams writes a mention as `<at>Name</at>` in the text, with a `mention` entity naming whom it is for. The bot's
own mention goes. A colleague addressed at the start is the addressee, not the subject of what follows: that
mention goes entirely; a colleague named later stays as "a colleague". Formatting tags go and HTML entities are
decoded last, so something typed as `&lt;at&gt;` never becomes a mention.
"""

from __future__ import annotations

import html
import re

from bot.core.text import safe_text

_AT = re.compile(r"<at\b[^>]*>(.*?)</at>", re.IGNORECASE | re.DOTALL)
_LEADING_AT = re.compile(r"^(?:\s*<at\b[^>]*>.*?</at>[\s,:;-]*)+", re.IGNORECASE | re.DOTALL)
_BREAK = re.compile(r"<br\s*/?>|</p>|</div>", re.IGNORECASE)
_TAG = re.compile(r"</?(?:p|div|span|b|i|u|s|strong|em|strike|code|pre|blockquote|ul|ol|li|h[1-6]|font)\b[^>]*>", re.IGNORECASE)
COLLEAGUE = "a colleague"


def without_bot(text: str, bot_mentions: tuple[str, ...]) -> str:
    """The text minus every mention of the bot (`bot_mentions`: how they are written, "<at>PolicyBot</at>")."""
    text = safe_text(text)
    for written in sorted(set(m for m in bot_mentions if m), key=len, reverse=True):
        text = text.replace(written, " ")
    return text


def question_text(text: str, bot_mentions: tuple[str, ...]) -> str:
    """What the core is asked: no bot mention, no leading addressee, later colleagues as "a colleague"."""
    text = _LEADING_AT.sub(" ", _plain_breaks(without_bot(text, bot_mentions)).lstrip())
    text = _AT.sub(COLLEAGUE, text)
    return _tidy(text)


def raw_text(text: str, bot_mentions: tuple[str, ...]) -> str:
    """As written, minus the bot's mention (names kept): the words of a concern's record."""
    return _tidy(_AT.sub(lambda m: m.group(1), _plain_breaks(without_bot(text, bot_mentions))))


def _plain_breaks(text: str) -> str:
    return _BREAK.sub("\n", text)


def _tidy(text: str) -> str:
    text = html.unescape(_TAG.sub("", text)).replace("\xa0", " ")
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in text.split("\n")]
    return "\n".join(line for line in lines if line).strip()
