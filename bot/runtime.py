"""Assemble the pipeline from settings: the one place that wires the parts together."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from functools import cached_property

from bot.answer import Answerer
from bot.settings import Settings
from index import build, store
from index.catalogue import Catalogue, load_catalogue
from index.embed import SentenceTransformerEmbedder
from index.live import LiveIndex

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings

    @cached_property
    def catalogue(self) -> Catalogue:
        return load_catalogue(self.settings.policies_dir)

    @cached_property
    def embedder(self) -> SentenceTransformerEmbedder:
        return SentenceTransformerEmbedder(self.settings.model)

    @cached_property
    def index(self) -> LiveIndex:
        return LiveIndex(self.settings.index_dir, self.embedder)

    @cached_property
    def answerer(self) -> Answerer:
        return Answerer(self.catalogue, self.index, today=dt.date.today)

    def build_index(self) -> store.Manifest:
        return build.build(self.settings.policies_dir, self.settings.index_dir, self.embedder)

    def index_is_stale(self) -> bool:
        try:
            manifest = store.read_manifest(store.resolve_current(self.settings.index_dir))
        except store.IndexNotReady:
            return True
        return build.is_stale(manifest, self.settings.policies_dir, self.catalogue, self.embedder.name)

    def ensure_index(self) -> bool:
        """Build the index when it is missing or out of date; True when a build ran."""
        if self.index_is_stale():
            log.info("index missing or stale; building")
            self.build_index()
            return True
        return False
