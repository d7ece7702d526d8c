"""A word-index tokenizer for the LSTM: fitted on training plots, saved as JSON.

Keras 3 dropped ``keras.preprocessing.text.Tokenizer``; this is the same idea with a
stable file format, so prediction reads exactly the vocabulary training used.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

PAD, OOV = 0, 1
_TOKEN = re.compile(r"[a-z0-9']+")


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


class Tokenizer:
    """Ids 2..vocab_size-1 for the most frequent training words; 1 for any other word, 0 pads."""

    def __init__(self, vocab_size: int, length: int, words: list[str] | None = None) -> None:
        self.vocab_size = vocab_size
        self.length = length
        self.words = words or []
        self._index = {w: i + 2 for i, w in enumerate(self.words)}

    def fit(self, texts: Iterable[str]) -> Tokenizer:
        counts = Counter(t for text in texts for t in tokens(text))
        # ties broken alphabetically so the vocabulary does not depend on row order
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        self.words = [w for w, _ in ranked[: self.vocab_size - 2]]
        self._index = {w: i + 2 for i, w in enumerate(self.words)}
        return self

    def transform(self, texts: Iterable[str]) -> np.ndarray:
        """int32 (n, length): ids from the start of the plot, zero-padded at the end."""
        texts = list(texts)
        out = np.zeros((len(texts), self.length), dtype=np.int32)
        for row, text in enumerate(texts):
            ids = [self._index.get(t, OOV) for t in tokens(text)][: self.length]
            out[row, : len(ids)] = ids
        return out

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"vocab_size": self.vocab_size, "length": self.length, "words": self.words}))

    @classmethod
    def load(cls, path: Path) -> Tokenizer:
        saved = json.loads(Path(path).read_text())
        return cls(saved["vocab_size"], saved["length"], saved["words"])
