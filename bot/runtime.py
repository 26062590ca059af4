"""Assemble the pipeline from settings: the one place that wires the parts together."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from functools import cached_property

from bot.answer import Answerer
from bot.coverage import Coverage, coverage_for
from bot.settings import Settings
from index import publish
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
        return SentenceTransformerEmbedder(self.settings.model, models_dir=self.settings.model_store, onnx=self.settings.onnx_runtime)

    @cached_property
    def safeguarding_embedder(self) -> SentenceTransformerEmbedder:
        """The bundled model unless settings name another: the gate's thresholds and learned boundary are
        calibrated for it, so choosing a larger model for answers must not change which concerns are caught."""
        embedder = SentenceTransformerEmbedder(self.settings.safeguarding_model, models_dir=self.settings.model_store,
                                               onnx=self.settings.onnx_runtime)
        return self.embedder if embedder.name == self.embedder.name else embedder

    @cached_property
    def index(self) -> LiveIndex:
        return LiveIndex(self.settings.index_dir, self.embedder)

    @cached_property
    def safeguarding(self):
        from bot.safeguarding import SafeguardingDetector

        return SafeguardingDetector(self.safeguarding_embedder)

    @cached_property
    def escalations(self):
        from bot.escalation_store import EscalationStore

        return EscalationStore(self.settings.database)

    @cached_property
    def answerer(self) -> Answerer:
        thresholds = self.settings.answer_thresholds
        coverage = coverage_for(self.embedder.name, Coverage(**thresholds.model_dump()) if thresholds else None)
        return Answerer(self.catalogue, self.index, today=dt.date.today, coverage=coverage, safeguarding=self.safeguarding)

    def build_index(self, *, dry_run: bool = False, keep: int = publish.KEEP, progress: bool | None = None) -> publish.ChangeReport:
        """Publish what changed in the policies folder as a new index version and start serving it."""
        self.__dict__.pop("catalogue", None)  # the catalogue may have been edited too
        report = publish.publish(self.settings.policies_dir, self.settings.index_dir, self.embedder,
                                 dry_run=dry_run, keep=keep, progress=progress)
        if report.published and "index" in self.__dict__:
            self.index.reload()
        return report

    def rollback_index(self) -> str:
        version = publish.rollback(self.settings.index_dir)
        if "index" in self.__dict__:
            self.index.reload()
        return version.name

    def index_is_stale(self) -> bool:
        return publish.is_stale(self.settings.index_dir, self.settings.policies_dir, self.embedder.name)

    def ensure_index(self) -> bool:
        """Build the index when it is missing or out of date; True when a build ran."""
        if self.index_is_stale():
            log.info("index missing or stale; building")
            self.build_index()
            return True
        return False
