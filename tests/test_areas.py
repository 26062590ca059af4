"""The areas of school life a question may be about instead of the school's loaded policies (index/areas.py)."""

from __future__ import annotations

import pytest

from index.areas import AREAS_FILE, Areas, AreasError


def test_each_area_and_each_of_its_parts_is_a_phrase_and_a_match_names_the_whole_area(embedder):
    areas = Areas(["pupil transport, minibus driving, parking and drop-off arrangements", "school uniform"])
    assert {"pupil transport", "minibus driving", "parking", "drop-off arrangements", "school uniform"} <= set(areas.phrases)
    nearest = areas.nearest(embedder.embed(["Where can I park my car?"]), embedder)
    assert nearest.area == "pupil transport, minibus driving, parking and drop-off arrangements"
    assert 0 < nearest.similarity <= 1
    assert areas.nearest(embedder.embed(["What colour is the school jumper?"]), embedder).area == "school uniform"


def test_no_areas_means_no_nearest_area(embedder):
    assert Areas([]).nearest(embedder.embed(["Where can I park?"]), embedder) is None


def test_the_shipped_areas_load_and_leave_out_what_the_bundled_policies_cover():
    areas = Areas.load()
    assert len(areas.areas) >= 50
    assert not any(word in area.lower() for area in areas.areas for word in ("social media", "online", "internet"))
    assert AREAS_FILE.name == "areas.yaml"


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
