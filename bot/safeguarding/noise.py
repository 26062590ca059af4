"""Generated text with no words in it (keyboard mash, random characters), fitted as "no concern".

The gate's regressions only ever saw staff messages; far from all of them, a
linear head says anything, and before these were added random strings were
forwarded as concerns (154 of 200; found by fuzzing the Slack endpoint, tests/test_fuzz.py). Fitted
with 1,000 of these, 0 of 300 fresh strings were forwarded and the sealed sgD
sets kept 156 of 160 concerns forwarded (docs/safeguarding.md). They are made
from a fixed seed, so every replica fits the same gate.
"""

from __future__ import annotations

import random
import string

from bot.safeguarding.examples import Example

COUNT = 1000
SEED = 0
_CHARACTERS = string.ascii_letters + string.digits + string.punctuation + "     " + "éÀ¾\xad£€😀ßøñ"
_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm", "1234567890")


def noise_texts(count: int = COUNT, seed: int = SEED) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        kind = rng.random()
        if kind < 0.5:  # characters from a keyboard, with spaces
            texts.append("".join(rng.choice(_CHARACTERS) for _ in range(rng.randint(1, 80))))
        elif kind < 0.8:  # any code points of the first planes: scripts, symbols, controls of other alphabets
            texts.append("".join(chr(rng.randint(0x20, 0x2FFF)) for _ in range(rng.randint(1, 40))))
        else:  # a hand along one row of the keyboard
            row = rng.choice(_KEYBOARD_ROWS)
            texts.append(" ".join("".join(rng.choice(row) for _ in range(rng.randint(2, 9))) for _ in range(rng.randint(1, 6))))
    return texts


def noise_examples() -> list[Example]:
    return [Example(text=text, concern=False, source="noise") for text in noise_texts()]
