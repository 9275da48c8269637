import re

import pytest
from support.paths import SHARED

from kefu.errors import DataError
from kefu.serving.taxonomy import HEADS, load_taxonomy

SPEC = SHARED / "spec" / "taxonomy.md"


def _spec_ids(section_title: str) -> list[str]:
    text = SPEC.read_text(encoding="utf-8")
    section = text.split(section_title, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\|[^|]*\| `([a-z_]+)` \|", section, flags=re.M) or re.findall(
        r"^\| `([a-z_]+)` \|", section, flags=re.M
    )


@pytest.mark.skipif(not SPEC.exists(), reason="spec/taxonomy.md not beside the repository")
@pytest.mark.parametrize(
    ("head", "section"),
    [("intent", "## Head 1"), ("urgency", "## Head 2"), ("emotion", "## Head 3")],
)
def test_yaml_lists_the_spec_ids_in_order(taxonomy, head, section):
    assert list(taxonomy.labels(head)) == _spec_ids(section)


def test_shape_of_the_taxonomy(taxonomy):
    assert len(taxonomy.labels("intent")) == 21
    assert taxonomy.labels("urgency") == ("low", "medium", "high", "critical")
    assert len(taxonomy.labels("emotion")) == 5
    # the spec says "8 groups" in prose but its table and routing list 7; the table is the contract
    assert len(taxonomy.groups) == 7
    assert set(taxonomy.intent_groups().values()) == {g.id for g in taxonomy.groups}
    assert taxonomy.urgency_priorities() == {
        "low": "P3",
        "medium": "P2",
        "high": "P1",
        "critical": "P0",
    }
    assert set(HEADS) == {"intent", "urgency", "emotion"}


def test_bad_taxonomy_names_the_file(tmp_path):
    bad = tmp_path / "taxonomy.yaml"
    bad.write_text("version: 1\ngroups: []\nintents: [{id: x, name: y, group: nope}]\n", "utf-8")
    with pytest.raises(DataError, match=str(bad)):
        load_taxonomy(bad)
    with pytest.raises(DataError, match="not found"):
        load_taxonomy(tmp_path / "missing.yaml")
    with pytest.raises(DataError, match=r"cannot be read \(Is a directory\); set KEFU_TAXONOMY"):
        load_taxonomy(tmp_path)
    bad.write_bytes("version: 1 # 分类".encode("gbk"))
    with pytest.raises(DataError, match=r"cannot be read \(invalid .*\); set KEFU_TAXONOMY"):
        load_taxonomy(bad)


def test_an_empty_kefu_taxonomy_is_the_packaged_taxonomy(taxonomy, monkeypatch):
    monkeypatch.setenv("KEFU_TAXONOMY", "")
    assert load_taxonomy() == taxonomy
