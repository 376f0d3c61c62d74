"""Each rule has one home (issue #27, item 2): no module re-derives what the engine's one function computes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("annotation", "ml_engine", "benchmarks")


def sources(*skip: str):
    for folder in SOURCES:
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if "migrations" not in path.parts and rel not in skip:
                yield rel, path.read_text()


def test_spacing_comes_from_the_affine_in_one_place():
    """Voxel sizes from an affine: ml_engine.io.spacing_from_affine, not another norm of its columns."""
    pattern = re.compile(r"(linalg\.norm|sqrt)\(.*\[:3, :3\]")
    found = [rel for rel, text in sources("ml_engine/io/nifti.py") if pattern.search(text)]
    assert found == []


def test_folders_are_staged_in_one_place():
    """A folder that lands whole is staged by ml_engine.io.atomic_folder: no other module makes its own hidden
    sibling folder and renames it into place."""
    pattern = re.compile(r"mkdtemp\(|\.rename\(target\)|os\.replace\(staging")
    found = [rel for rel, text in sources() if pattern.search(text) and rel.startswith(("annotation/", "ml_engine/"))
             and not rel.startswith("ml_engine/io/")]
    assert found == []


def test_the_models_architectures_and_member_kinds_are_the_engines():
    """ModelVersion.Arch holds the engine's networks (trained here), its member kinds (registered) and `external`
    (another tool's label maps), and nothing else."""
    from annotation.models import ModelVersion
    from ml_engine.members import KINDS
    from ml_engine.networks import ARCHITECTURES

    assert list(ModelVersion.TRAINED) == list(ARCHITECTURES)
    assert list(ModelVersion.REGISTERED) == list(KINDS)
    assert set(ModelVersion.Arch.values) == {*ARCHITECTURES, *KINDS, ModelVersion.Arch.EXTERNAL}


def test_an_organ_index_is_built_from_a_label_sets_rows_in_one_place():
    """LabelSet.organ_index: no service or adapter builds ml_engine.labels.OrganIndex from rows itself."""
    found = [rel for rel, text in sources("annotation/models/catalog.py")
             if re.search(r"OrganIndex\.from_entries|from_label_set", text) and rel.startswith("annotation/")]
    assert found == []


@pytest.mark.django_db
def test_a_label_sets_organ_index_matches_its_rows():
    from annotation.models import LabelSet
    from ml_engine.labels import label_set

    rows = LabelSet.objects.get(name="abdomenatlas")
    index = rows.organ_index()
    assert index.values == rows.organ_values() == label_set("abdomenatlas").values
    assert index.organs == rows.organ_names() and index.name == "abdomenatlas"
    assert index.resolve("inferior_vena_cava") == "postcava"


def test_which_round_is_current_is_decided_in_one_place():
    """selectors.rounds.current_round and round_by_number: no other module picks "the latest round" or looks a round
    up by its number itself (a service's locked read of the round it changes is a lock, not this question)."""
    pattern = re.compile(r'Round\.objects\.(?!select_for_update)\S*order_by\("-number"\)\.first\(\)'
                         r"|Round\.objects\.\S*filter\(number=")
    found = [rel for rel, text in sources("annotation/selectors/rounds.py") if pattern.search(text)]
    assert found == []
