"""Texts with taught alternatives: the near-ties of the v2 conformance world.

A `Text` is a sequence of parts; a part is either fixed text or a tuple of alternatives that training shows
equally often. A model trained that way hesitates between them (log-probabilities within a small fraction of a
nat), as a real model does between two phrasings, so honest engines that round differently pick differently.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

Part = str | tuple[str, ...]


@dataclass(frozen=True)
class Text:
    parts: tuple[Part, ...] = field(default_factory=tuple)

    @classmethod
    def of(cls, *parts: Part) -> Text:
        return cls(tuple(p for p in parts if p))

    def __add__(self, other: Text | str) -> Text:
        return Text(self.parts + (other.parts if isinstance(other, Text) else (other,)))

    def join(self, texts: list[Text]) -> Text:
        """`texts` with this text between each two (like `str.join`)."""
        out = Text()
        for i, text in enumerate(texts):
            out = out + (self + text if i else text)
        return out

    def render(self, rng: random.Random | None = None) -> str:
        """One realisation: alternatives drawn uniformly with `rng`, the first of each without it."""
        return "".join(p if isinstance(p, str) else (rng.choice(p) if rng else p[0]) for p in self.parts)

    def pattern(self) -> str:
        """A regular expression matching every realisation and nothing else."""
        return "".join(re.escape(p) if isinstance(p, str) else "(?:" + "|".join(map(re.escape, p)) + ")"
                       for p in self.parts)

    def matches(self, text: str) -> bool:
        return re.fullmatch(self.pattern(), text, re.DOTALL) is not None

    @property
    def choices(self) -> int:
        """How many positions hold taught alternatives."""
        return sum(1 for p in self.parts if not isinstance(p, str))
