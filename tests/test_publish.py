"""Incremental, versioned, atomic publishing with the real model and real FAISS indexes."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bot.core.answering import Answerer, Question
from index import publish, store, tokens
from index.build import PIPELINE, embedding_texts, whole_text
from index.catalogue import load_catalogue
from index.embed import Embedder
from index.errors import PolicyBotError
from index.live import LiveIndex
from tests.conftest import POLICIES, TODAY

EX_PUPIL = "can I accept a follow from an ex-pupil aged 18?"
OLD, NEW = "below the age of nineteen", "below the age of twenty-one"


class CountingEmbedder(Embedder):
    """The real embedder, counting the texts it is asked to embed."""

    def __init__(self, real):
        self.real, self.name, self.word_layer, self.texts, self.token_texts = real, real.name, real.word_layer, [], []

    def embed(self, texts):
        self.texts.extend(texts)
        return self.real.embed(texts)

    def embed_tokens(self, texts):
        self.token_texts.extend(texts)
        return self.real.embed_tokens(texts)

    @property
    def dimension(self):
        return self.real.dimension


@pytest.fixture(scope="module")
def base(tmp_path_factory, embedder) -> Path:
    """The bundled policies published once; tests copy it."""
    root = tmp_path_factory.mktemp("base")
    shutil.copytree(POLICIES, root / "policies")
    publish.publish(root / "policies", root / "data" / "index", embedder, progress=False)
    return root


@pytest.fixture
def site(base, tmp_path) -> Path:
    shutil.copytree(base, tmp_path / "site")
    return tmp_path / "site"


def _reword(policies: Path) -> None:
    path = policies / "chiltern" / "social-media.txt"
    text = path.read_text(encoding="utf-8")
    assert OLD in text
    path.write_text(text.replace(OLD, NEW), encoding="utf-8")


def _answerer(site: Path, embedder, **live) -> Answerer:
    return Answerer(LiveIndex(site / "data" / "index", embedder, policies_dir=site / "policies", **live), today=lambda: TODAY)


def _ask(answerer: Answerer, school: str = "chiltern", text: str = EX_PUPIL):
    return answerer.answer(Question(text=text, school=school))


def test_one_changed_clause_reembeds_only_that_policy_and_is_answered(site, embedder):
    index_dir = site / "data" / "index"
    before = publish.current_version(index_dir)
    _reword(site / "policies")
    counting = CountingEmbedder(embedder)

    report = publish.publish(site / "policies", index_dir, counting, progress=False)

    old, new = store.load(before), store.load(publish.current_version(index_dir))
    new_chiltern = [c for c in new.chunks if c.school == "chiltern"]
    expected = [t for c in new_chiltern for t in embedding_texts(c)]
    assert sorted(counting.texts[: len(expected)]) == sorted(expected)  # only the changed policy is embedded...
    smoke = counting.texts[len(expected):]  # ...then one validation query per school
    assert len(smoke) == 5 and set(smoke) <= {"Social Media Policy", "Social Networking/Media Policy"}
    # its word vectors too; every other policy's are carried over as they were
    assert counting.token_texts[: len(new_chiltern)] == [whole_text(c) for c in new_chiltern]
    assert counting.token_texts[len(new_chiltern):] == smoke
    old_kingsmead = [i for i, c in enumerate(old.chunks) if c.school == "kingsmead"]
    new_kingsmead = [i for i, c in enumerate(new.chunks) if c.school == "kingsmead"]
    assert len(old_kingsmead) == len(new_kingsmead) > 0
    for i, j in zip(old_kingsmead, new_kingsmead):
        assert (old.tokens.chunk(i).ids == new.tokens.chunk(j).ids).all()
        assert (old.tokens.chunk(i).vectors == new.tokens.chunk(j).vectors).all()
        assert (old.tokens.chunk(i).last == new.tokens.chunk(j).last).all()
    assert report.published and report.embedded == len(expected) and report.reused > 0
    assert [(p.school, p.policy) for p in report.changed] == [("chiltern", "social-media")]
    assert not report.added and not report.removed and report.unchanged == 4
    (change,) = report.changed[0].clauses
    assert change.kind == "reworded" and change.section == "6.2" and NEW in change.new and OLD in change.old
    assert "reworded clause 6.2" in report.summary() and "twenty-one" in report.summary()
    assert publish.current_version(index_dir) != before

    result = CliRunner().invoke(
        __import__("bot.cli", fromlist=["main"]).main,
        ["--policies", str(site / "policies"), "--data", str(site / "data"), "ask", EX_PUPIL, "--school", "chiltern"],
    )
    assert result.exit_code == 0, result.output
    assert NEW in result.output and OLD not in result.output


def test_no_change_publishes_nothing_and_dry_run_only_reports(site, embedder):
    index_dir = site / "data" / "index"
    before = publish.current_version(index_dir)
    counting = CountingEmbedder(embedder)
    assert not publish.publish(site / "policies", index_dir, counting, progress=False).published
    _reword(site / "policies")
    report = publish.publish(site / "policies", index_dir, counting, dry_run=True, progress=False)
    assert report.dry_run and not report.published and report.changed[0].clauses[0].section == "6.2"
    assert counting.texts == [] and publish.current_version(index_dir) == before  # nothing embedded
    assert publish.is_stale(index_dir, site / "policies", embedder.name)


def test_an_index_chunked_by_other_code_is_stale_and_rebuilt_in_full(site, embedder):
    """After an upgrade that changes how policies are chunked, nothing cut the old way is reused."""
    index_dir = site / "data" / "index"
    folder = publish.current_version(index_dir)
    assert (folder / publish.PIPELINE_FILE).read_text(encoding="utf-8").strip() == PIPELINE
    assert not publish.chunked_by_other_code(folder)
    assert not publish.is_stale(index_dir, site / "policies", embedder.name)
    (folder / publish.PIPELINE_FILE).unlink()  # as an index built before the fingerprint was recorded
    assert publish.is_stale(index_dir, site / "policies", embedder.name)
    counting = CountingEmbedder(embedder)
    dry = publish.publish(site / "policies", index_dir, counting, dry_run=True, progress=False)
    dry_lines = dry.summary().splitlines()
    assert dry_lines[0] == "Dry run: nothing was published." and "would be chunked again" in dry_lines[1]
    assert counting.texts == [] and publish.current_version(index_dir) == folder
    report = publish.publish(site / "policies", index_dir, counting, progress=False)
    rebuilt = store.load(publish.current_version(index_dir))
    smoke_queries = sum(1 for school in load_catalogue(site / "policies").schools.values() if school.policies)
    assert report.published and report.rechunked and report.reused == 0 and report.embedded == rebuilt.vectors.ntotal > 0
    assert len(counting.texts) == report.embedded + smoke_queries
    # the same files are not reported as changed policies, however differently they were chunked
    assert report.unchanged == 5 and not report.has_changes
    lines = report.summary().splitlines()
    assert lines[0].startswith("Published index version") and "No changes" not in report.summary() and "was chunked again" in lines[1]
    assert not publish.chunked_by_other_code(publish.current_version(index_dir))
    assert not publish.is_stale(index_dir, site / "policies", embedder.name)


def test_an_older_release_can_still_read_the_manifest(site):
    """The fingerprint lives beside the manifest, and a manifest with fields from a newer release still loads."""
    folder = publish.current_version(site / "data" / "index")
    raw = json.loads((folder / store.MANIFEST).read_text(encoding="utf-8"))
    assert set(raw) == {"model", "dimension", "documents", "built_at", "format"}
    raw["added_by_a_newer_release"] = 1
    assert store.Manifest.from_json(json.dumps(raw)).model == raw["model"]


def test_reindex_while_answering_never_fails_or_mixes_versions(site, embedder):
    answerer = _answerer(site, embedder, check_seconds=0.0)  # every question checks CURRENT
    live = answerer.index
    used = threading.local()
    original = live.current

    def recording_current():
        snapshot = original()
        used.snapshots.append(snapshot)
        return snapshot

    live.current = recording_current
    records, failures, stop = [], [], threading.Event()
    questions = [("chiltern", EX_PUPIL), ("kingsmead", "can I post photos of students?"), ("mill-lane", "can staff use personal phones?")]

    def ask_steadily():
        n = 0
        while not stop.is_set() and n < 400:
            school, text = questions[n % len(questions)]
            used.snapshots = []
            try:
                answer = answerer.answer(Question(text=text, school=school))
                records.append((answer, list(used.snapshots)))
            except Exception as exc:  # noqa: BLE001 - any failure is what this test counts
                failures.append(exc)
            n += 1

    worker = threading.Thread(target=ask_steadily)
    worker.start()
    try:
        while len(records) < 3 and worker.is_alive():
            time.sleep(0.05)
        _reword(site / "policies")
        report = publish.publish(site / "policies", site / "data" / "index", embedder, progress=False)
        seen = len(records)
        deadline = time.monotonic() + 60
        while len(records) < seen + 6 and time.monotonic() < deadline and worker.is_alive():
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join(timeout=60)

    assert report.published and failures == []
    versions = []
    for answer, snapshots in records:
        assert len({s.folder for s in snapshots}) == 1  # one index for the whole answer
        chunks = {(c.school, c.section, c.text) for c in snapshots[0].retriever.stored.chunks}
        assert all((c.school, c.section, c.text) in chunks for c in answer.citations)
        versions.append(snapshots[0].folder.name)
    assert versions[0] != versions[-1] and versions[-1] == report.version  # both versions answered
    chiltern = [(a, s[0].folder.name) for a, s in records if a.school == "chiltern"]
    for answer, version in chiltern:
        quoted = " ".join(c.text for c in answer.citations)
        assert (NEW in quoted) == (version == report.version) or (OLD not in quoted and NEW not in quoted)


def test_a_corrupt_file_fails_the_build_by_name_and_the_old_index_keeps_answering(site, embedder):
    index_dir = site / "data" / "index"
    answerer = _answerer(site, embedder)
    before = publish.current_version(index_dir)
    broken = site / "policies" / "kingsmead" / "staff-handbook.pdf"
    broken.write_bytes(b"%PDF-1.7\nthis is not really a PDF")
    _reword(site / "policies")

    with pytest.raises(PolicyBotError) as error:
        publish.publish(site / "policies", index_dir, embedder, progress=False)
    assert str(broken) in str(error.value)
    assert publish.current_version(index_dir) == before
    assert not list((index_dir / publish.VERSIONS).glob(".building-*"))
    answerer.index.reload()
    assert OLD in " ".join(c.text for c in _ask(answerer).citations)

    result = CliRunner().invoke(
        __import__("bot.cli", fromlist=["main"]).main, ["--policies", str(site / "policies"), "--data", str(site / "data"), "index"]
    )
    assert result.exit_code == 1 and "staff-handbook.pdf" in result.output


def test_rollback_restores_the_previous_version_and_old_versions_are_pruned(site, embedder):
    index_dir = site / "data" / "index"
    first = publish.current_version(index_dir)
    answerer = _answerer(site, embedder)
    _reword(site / "policies")
    second = publish.publish(site / "policies", index_dir, embedder, progress=False, keep=2)
    answerer.index.reload()
    assert NEW in " ".join(c.text for c in _ask(answerer).citations)

    result = CliRunner().invoke(
        __import__("bot.cli", fromlist=["main"]).main, ["--policies", str(site / "policies"), "--data", str(site / "data"), "index", "--rollback"]
    )
    assert result.exit_code == 0, result.output
    assert publish.current_version(index_dir) == first
    assert "chunk every policy again" not in result.output  # built by this code: rolling back to it sticks
    assert answerer.index.reload()
    assert OLD in " ".join(c.text for c in _ask(answerer).citations)

    # publishing again (the files still hold the new wording) and keeping 2 versions drops the oldest
    publish.point_to(index_dir, index_dir / publish.VERSIONS / second.version)
    path = site / "policies" / "chiltern" / "social-media.txt"
    path.write_text(path.read_text(encoding="utf-8").replace(NEW, "below the age of twenty"), encoding="utf-8")
    third = publish.publish(site / "policies", index_dir, embedder, progress=False, keep=2)
    assert [v.name for v in publish.versions(index_dir)] == [second.version, third.version]

    # rolling back to a version chunked by another release says that the next build will chunk again
    (index_dir / publish.VERSIONS / second.version / publish.PIPELINE_FILE).write_text("another-release\n", encoding="utf-8")
    result = CliRunner().invoke(
        __import__("bot.cli", fromlist=["main"]).main, ["--policies", str(site / "policies"), "--data", str(site / "data"), "index", "--rollback"]
    )
    assert result.exit_code == 0 and "chunk every policy again" in result.output, result.output


def test_a_file_without_catalogue_entry_is_indexed_and_needs_metadata(site, embedder):
    extra = site / "policies" / "mill-lane" / "mobile-phones.md"
    extra.write_text(
        "# Mobile Phone Policy\n\nDate approved: 12 March 2025\nNext review date: March 2026\n\n"
        "1 Use of phones\n\n1.1 Staff must keep personal mobile phones in a locked locker during lessons.\n",
        encoding="utf-8",
    )
    report = publish.publish(site / "policies", site / "data" / "index", embedder, progress=False)
    assert report.needs_metadata == ("mill-lane/mobile-phones.md",)
    assert [(p.school, p.policy, p.title) for p in report.added] == [("mill-lane", "mobile-phones", "Mobile Phone Policy")]
    (meta,) = publish.read_metadata(publish.current_version(site / "data" / "index"))
    assert meta["approved"] == "12 March 2025" and meta["next_review"] == "March 2026"
    answer = _ask(_answerer(site, embedder), "mill-lane", "where do I keep my phone during lessons?")
    assert any(c.policy == "mobile-phones" and c.section == "1.1" for c in answer.citations)

    status = CliRunner().invoke(
        __import__("bot.cli", fromlist=["main"]).main, ["--policies", str(site / "policies"), "--data", str(site / "data"), "status"]
    )
    assert status.exit_code == 0 and "NEEDS METADATA" in status.output and "mobile-phones.md" in status.output


def test_a_plain_index_folder_still_serves(bundled_index, embedder, tmp_path):
    """An index folder without versions (one version copied out on its own) is served as it is."""
    plain = tmp_path / "plain"
    shutil.copytree(store.resolve_current(bundled_index), plain)
    assert store.resolve_current(plain) == plain
    assert LiveIndex(plain, embedder).current().manifest.documents


def test_an_index_without_word_vectors_computes_them_and_answers_the_same(bundled_index, embedder, tmp_path):
    """An index built before word matching is served with word vectors computed at load, not refused."""
    from index.search import Retriever

    stored = store.load(store.resolve_current(bundled_index))
    plain = tmp_path / "plain"
    shutil.copytree(store.resolve_current(bundled_index), plain)
    (plain / tokens.FILE).unlink()
    older = store.load(plain)
    assert stored.tokens is not None and older.tokens is None
    with_file, computed = Retriever(stored, embedder), Retriever(older, embedder)
    for school in with_file.schools:
        a, b = with_file.search(EX_PUPIL, school), computed.search(EX_PUPIL, school)
        assert [h.chunk.ordinal for h in a] == [h.chunk.ordinal for h in b]
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-3)  # stored in half precision
        assert [h.confidence for h in a] == pytest.approx([h.confidence for h in b], abs=1e-3)


def test_word_vectors_come_from_the_word_layer_and_the_last_layer(bundled_index, embedder):
    """The default model ranks with one middle layer's word vectors and judges with its last layer's, checked
    against the model run directly with transformers; the sentence vector is the one `embed` gives."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    text = "Staff must not accept friend requests from ex-pupils under the age of 18."
    vector, (pieces,) = embedder.embed_question(text)
    assert np.allclose(vector, embedder.embed([text]), atol=1e-5)
    tokenizer, model = AutoTokenizer.from_pretrained(embedder.model_dir), AutoModel.from_pretrained(embedder.model_dir)
    encoded = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        layers = model(**encoded, output_hidden_states=True).hidden_states
    ids = encoded["input_ids"][0].tolist()
    positions, start = [], 0
    for piece in pieces.ids.tolist():  # the content pieces are a subsequence of the text's pieces
        start = ids.index(piece, start)
        positions.append(start)
        start += 1

    def unit(rows):
        rows = rows[0, positions].numpy()
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    layer = embedder.word_layer
    assert pieces.layer == layer and layer is not None and len(positions) >= 8
    assert np.allclose(pieces.vectors, unit(layers[layer]), atol=1e-4)
    assert np.allclose(pieces.last, unit(layers[-1]), atol=1e-4)
    assert not np.allclose(pieces.vectors, pieces.last, atol=1e-2)
    table = store.load(store.resolve_current(bundled_index)).tokens
    assert table.layer == layer and table.vectors.shape == table.last.shape and len(table.ids) > 1000


def test_a_word_vector_file_from_before_layers_is_read_as_the_last_layer(bundled_index, tmp_path):
    """An index stored before layers were recorded, and what an older release reads of a new one: `vectors` is the last layer."""
    folder = tmp_path / "old"
    shutil.copytree(store.resolve_current(bundled_index), folder)
    table = store.load(folder).tokens
    with np.load(folder / tokens.FILE) as data:
        assert np.allclose(data["vectors"].astype(np.float32), table.last) and "words" in data.files
    np.savez(folder / tokens.FILE, ids=table.ids.astype(np.int32), vectors=table.last.astype(np.float16), offsets=table.offsets)
    old = store.load(folder).tokens
    assert old.layer is None and old.vectors is old.last and np.allclose(old.last, table.last)


def test_word_vectors_of_different_layers_never_share_a_table(bundled_index):
    table = store.load(store.resolve_current(bundled_index)).tokens
    mixed = [table.chunk(0), dataclasses.replace(table.chunk(1), layer=None)]
    with pytest.raises(ValueError, match="layers"):
        tokens.TokenTable.join(mixed, table.vectors.shape[1], table.layer)


def test_word_vectors_of_another_layer_are_recomputed_at_load_and_not_reused(site, bundled_index, embedder, tmp_path):
    """A table from another layer (an index built before the word layer changed) is never matched against
    the question's vectors of this layer: the retriever recomputes it, and `policybot index` re-embeds it."""
    from index.search import Retriever

    stored = store.load(store.resolve_current(bundled_index))
    other = tmp_path / "other-layer"
    shutil.copytree(store.resolve_current(bundled_index), other)
    table = stored.tokens
    tokens.TokenTable(table.ids, table.last, table.last, table.offsets, None).save(other)  # as if from the last layer
    older = store.load(other)
    assert older.tokens.layer is None and older.tokens.layer != embedder.word_layer
    with_file, recomputed = Retriever(stored, embedder), Retriever(older, embedder)
    for school in with_file.schools:
        a, b = with_file.search(EX_PUPIL, school), recomputed.search(EX_PUPIL, school)
        assert [h.chunk.ordinal for h in a] == [h.chunk.ordinal for h in b]
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-3)

    index_dir = site / "data" / "index"
    current = publish.current_version(index_dir)
    built = store.load(current).tokens
    tokens.TokenTable(built.ids, built.last, built.last, built.offsets, None).save(current)
    counting = CountingEmbedder(embedder)
    publish.publish(site / "policies", index_dir, counting, progress=False)
    rebuilt = store.load(publish.current_version(index_dir))
    assert len(counting.token_texts) >= len(rebuilt.chunks)  # every policy's word vectors embedded again
    assert rebuilt.tokens.layer == embedder.word_layer


def test_corrupt_or_mismatched_word_vectors_are_refused_by_name(bundled_index, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(store.resolve_current(bundled_index), folder)
    table = store.load(folder).tokens
    (folder / tokens.FILE).write_bytes(b"not a numpy archive")
    with pytest.raises(store.IndexNotReady, match="corrupt.*policybot index"):
        store.load(folder)
    tokens.TokenTable(table.ids, table.vectors, table.last, table.offsets[:-1], table.layer).save(folder)  # offsets past the last piece
    with pytest.raises(store.IndexNotReady, match="corrupt.*policybot index"):
        store.load(folder)
    tokens.TokenTable.join([table.chunk(i) for i in range(len(table) - 1)], table.vectors.shape[1], table.layer).save(folder)  # one chunk short
    with pytest.raises(store.IndexNotReady, match="word vectors do not match the chunks"):
        store.load(folder)


def test_a_question_without_content_words_still_gets_the_dense_ranking(answerer):
    retriever = answerer.index.current().retriever
    words = retriever.embedder.embed_tokens(["what is it about?"])[0]
    assert len(words.ids) == 0  # only stop words
    hits = retriever.search("what is it about?", "chiltern")
    assert len(hits) == 5 and all(h.chunk.school == "chiltern" for h in hits)
    scores = [h.score for h in hits]
    assert all(math.isfinite(s) and s > 0 for s in scores) and scores == sorted(scores, reverse=True)  # no 0/0 word score
    assert all(math.isfinite(h.confidence) and h.confidence > 0 for h in hits)


def test_watch_rebuilds_once_per_burst_of_changes_and_ignores_temp_files(tmp_path):
    from types import SimpleNamespace

    from index.watch import watch_policies

    policies = tmp_path / "policies"
    policies.mkdir()
    builds, reports, stop = [], [], threading.Event()
    runtime = SimpleNamespace(settings=SimpleNamespace(policies_dir=policies),
                              build_index=lambda progress=None: builds.append(progress) or f"report {len(builds)}")
    watcher = threading.Thread(target=watch_policies, args=(runtime, reports.append),
                               kwargs={"stop_event": stop, "debounce_ms": 300}, daemon=True)
    watcher.start()
    time.sleep(0.5)
    (policies / "~$lock.docx").write_text("x")  # Word's lock file: ignored
    time.sleep(1.0)
    assert reports == []
    for name in ("a.txt", "b.txt"):
        (policies / name).write_text("1.1 Staff must be kind.\n")
    deadline = time.monotonic() + 10
    while not reports and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    watcher.join(timeout=10)
    assert reports == ["report 1"] and builds == [False]
