"""The areas of school life a question may be about instead of the school's loaded policies (index/areas.py)."""

from __future__ import annotations

import pytest

from index.areas import AREAS_FILE, Areas, AreasError


def test_a_question_is_matched_to_its_nearest_area(embedder):
    areas = Areas(["pupil transport, minibus driving, parking and drop-off arrangements",
                   "school uniform, pupils' dress and appearance and uniform costs"])
    nearest = areas.nearest(embedder.embed(["Where can I park my car?"]), embedder)
    assert nearest.area == "pupil transport, minibus driving, parking and drop-off arrangements"
    assert 0 < nearest.similarity <= 1
    assert areas.nearest(embedder.embed(["What colour is the school jumper?"]), embedder).area.startswith("school uniform")


def test_each_model_embeds_the_areas_with_itself(embedder):
    """The vectors are kept per model: a question's vector is only ever compared with areas from its own model."""
    areas = Areas(["school uniform, pupils' dress and appearance and uniform costs"])
    areas.nearest(embedder.embed(["jumper"]), embedder)
    assert list(areas._vectors) == [embedder.name]
    assert areas._vectors[embedder.name].shape == (1, embedder.dimension)


def test_no_areas_means_no_nearest_area(embedder):
    assert Areas([]).nearest(embedder.embed(["Where can I park?"]), embedder) is None


def test_the_shipped_areas_are_listed_each_once():
    import yaml

    listed = yaml.safe_load(AREAS_FILE.read_text(encoding="utf-8"))
    areas = Areas.load()
    assert len(areas.areas) >= 50
    assert len(listed) == len(areas.areas) == len({a.strip().lower() for a in listed})
    assert not any(word in area.lower() for area in areas.areas for word in ("social media", "online", "internet"))


@pytest.mark.parametrize("content", ["areas: [parking]\n", "- parking\n- 3\n", "- ''\n"])
def test_a_malformed_areas_file_is_refused_with_its_path(tmp_path, content):
    path = tmp_path / "areas.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(AreasError, match="areas.yaml must be a list of areas"):
        Areas.load(path)


def test_an_unreadable_areas_file_says_so(tmp_path):
    path = tmp_path / "areas.yaml"
    path.write_text("- [unclosed\n", encoding="utf-8")
    with pytest.raises(AreasError, match="Cannot read .*areas.yaml"):
        Areas.load(path)
