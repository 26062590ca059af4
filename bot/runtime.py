"""Assemble the bot from settings: the one place that wires the parts together.

Each part is built on first use, so `policybot --help` imports nothing heavy and
a command builds only what it needs. The chat platforms get one conversation
core (`conversation`) over one index, one model, one gate and one database.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from functools import cached_property

from bot.core.coverage import Coverage, coverage_for
from bot.core.decision import decision_for
from bot.settings import Settings
from index import publish

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings

    @cached_property
    def embedder(self):
        from index.embed import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder(self.settings.model, models_dir=self.settings.model_store, onnx=self.settings.onnx_runtime)

    @cached_property
    def reference_vectors(self):
        """Vectors of fixed texts (areas of school life), cached on disk by model (index/vector_cache.py)."""
        from bot.safeguarding.gate import shipped_vectors
        from index.vector_cache import VectorCache

        return VectorCache(self.embedder, self.settings.model_store / "cache", shipped=shipped_vectors(self.embedder))

    @cached_property
    def index(self):
        from index.live import LiveIndex

        return LiveIndex(self.settings.index_dir, self.embedder, policies_dir=self.settings.policies_dir,
                         reference_vectors=self.reference_vectors.vectors)

    @property
    def catalogue(self):
        """The catalogue of the published index (what answers use), not catalogue.yaml as it stands on disk."""
        return self.index.current().catalogue

    @cached_property
    def answerer(self):
        from bot.core.answering import Answerer

        thresholds = self.settings.answer_thresholds
        coverage = coverage_for(self.embedder.name, Coverage(**thresholds.model_dump()) if thresholds else None)
        decision = None if thresholds else decision_for(self.embedder.name)  # an admin's thresholds are theirs to keep
        return Answerer(self.index, coverage=coverage, today=dt.date.today, decision=decision)

    @cached_property
    def gate(self):
        from bot.safeguarding.examples import SHIPPED, load_examples
        from bot.safeguarding.gate import SafeguardingGate, Thresholds

        own = self.settings.safeguarding
        folders = [SHIPPED] + ([own.examples_dir] if own.examples_dir else [])
        defaults = Thresholds()
        thresholds = Thresholds(concern=own.concern_threshold if own.concern_threshold is not None else defaults.concern,
                                unsure=own.unsure_threshold if own.unsure_threshold is not None else defaults.unsure)
        return SafeguardingGate(self.gate_embedder, load_examples(folders), self.settings.model_store / "cache", thresholds,
                                reader=self.embedder, reader_cache=self.reference_vectors)

    @cached_property
    def gate_embedder(self):
        """The gate's own model: the small model with its fine-tuned adapter (bot/safeguarding/gate.py)."""
        from bot.safeguarding.gate import ADAPTER, GATE_MODEL
        from index.embed import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder(GATE_MODEL, models_dir=self.settings.model_store, onnx=self.settings.onnx_runtime,
                                           adapter=ADAPTER if ADAPTER.is_file() else None)

    @cached_property
    def database(self):
        from bot.storage.database import Database

        return Database(self.settings.database)

    @cached_property
    def state(self):
        from bot.core.state import ConversationState

        return ConversationState(self.database)

    @cached_property
    def escalations(self):
        from bot.escalation.store import EscalationStore

        return EscalationStore(self.database)

    def conversation(self, deliverer=None):
        """The conversation core; `deliverer` is the chat platforms' escalation delivery (None: the terminal, which
        alerts nobody and says so)."""
        from bot.core.conversation import Conversation

        return Conversation(self.settings, self.answerer, self.gate, self.state, self.escalations if deliverer else None,
                            deliverer, reindex=lambda: self.build_index(progress=False).summary())

    def warm(self) -> None:
        """Load the model and the index, embed the areas and fit the gate now, not on the first message."""
        retriever = self.index.current().retriever
        retriever.areas.nearest(self.embedder.embed(["warm up"]), self.embedder, self.reference_vectors.vectors)
        self.gate.warm()

    def build_index(self, *, dry_run: bool = False, keep: int = publish.KEEP, progress: bool | None = None) -> publish.ChangeReport:
        """Publish what changed in the policies folder as a new index version and start serving it."""
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

    def ensure_index(self) -> publish.ChangeReport | None:
        """Build the index when it is missing or out of date; the build's report when one ran. A policies folder that cannot
        be built (a broken catalogue, an unreadable file) never stops a bot that has an index to serve: it says so
        in one line and serves the published version."""
        from index.errors import PolicyBotError

        try:
            if not self.index_is_stale():
                return None
            log.info("index missing or stale; building")
            return self.build_index()
        except PolicyBotError as exc:
            if publish.current_version(self.settings.index_dir) is None:
                raise
            log.warning("the policies were not indexed (%s); still serving the published index", exc)
            return None
