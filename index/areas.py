"""Areas of school life beyond a school's loaded policies, for telling what a question is about.

"What is the procedure for giving medicine to pupils?" shares "pupils" and
"procedure" with a social media policy, and its best clause can score as high as
a real answer does. Yet as a whole the question is much nearer "supporting
pupils with medical conditions and administering medicines in school" than it
is to any sentence of that policy. `areas.yaml` names the areas a school's other
policies cover, each in one line of about a sentence's length (so that its
similarity to a question is on the scale of a policy sentence's); each is
embedded once with the index's model, and a question is compared with the
nearest of them and with the nearest passage of the school's own policies
(`index.search.Retriever.match`). A school that loads its medicines policy has
its own passages nearer, so the same question is answered from it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from index.errors import PolicyBotError

AREAS_FILE = Path(__file__).with_name("areas.yaml")


class AreasError(PolicyBotError):
    pass


@dataclass(frozen=True)
class NearestArea:
    area: str  # the area as areas.yaml words it
    similarity: float  # the question's cosine to it


class Areas:
    """The areas of `areas.yaml`, embedded on first use by each model that asks."""

    def __init__(self, areas: Sequence[str]):
        self.areas = tuple(dict.fromkeys(areas))
        self._vectors: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: Path = AREAS_FILE) -> Areas:
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or []
        except (OSError, yaml.YAMLError) as error:
            raise AreasError(f"Cannot read {path}: {error}; restore it from the release or fix it") from error
        if not isinstance(raw, list) or not all(isinstance(area, str) and area.strip() for area in raw):
            raise AreasError(f"{path} must be a list of areas, one short description per line (`- \"school uniform\"`)")
        return cls([area.strip() for area in raw])

    def nearest(self, vector: np.ndarray, embedder, embed=None) -> NearestArea | None:
        """The area nearest a question's (1, dimension) unit vector from `embedder`, None when there are none.
        `embed`: how to get the areas' vectors (a cache); the embedder's own `embed` by default."""
        if not self.areas:
            return None
        similarities = self._embedded(embedder, embed) @ np.asarray(vector, dtype=np.float32).reshape(-1)
        best = int(np.argmax(similarities))
        return NearestArea(self.areas[best], float(similarities[best]))

    def _embedded(self, embedder, embed=None) -> np.ndarray:
        with self._lock:  # two first questions at once embed the areas once
            if embedder.name not in self._vectors:
                self._vectors[embedder.name] = (embed or embedder.embed)(list(self.areas))
            return self._vectors[embedder.name]
