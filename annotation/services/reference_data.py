"""Reference data shipped in fixtures/: label sets, the error taxonomy and the role groups.

The label sets are read through ml_engine.labels, the engine's label vocabulary, from the same file the engine uses.

Data migrations load them (passing their historical models); `sync_reference_data` loads them again where a
database was emptied (transactional tests flush every table).
"""

from __future__ import annotations

import json

from django.db import transaction

from ml_engine.labels import FIXTURES, read_label_sets


def sync_label_sets(*, label_set_model=None, organ_model=None, data: list[dict] | None = None) -> int:
    """Create or update every label set and organ of the fixture; returns how many sets were synced.

    The model classes are parameters so that the data migration can pass its historical models.
    """
    if label_set_model is None or organ_model is None:
        from annotation.models import LabelSet, Organ

        label_set_model, organ_model = LabelSet, Organ
    data = read_label_sets() if data is None else data
    with transaction.atomic():
        for entry in data:
            label_set, _ = label_set_model.objects.update_or_create(
                name=entry["name"],
                defaults={"display_name": entry["display_name"], "description": entry.get("description", "")},
            )
            for organ in entry["organs"]:
                organ_model.objects.update_or_create(
                    label_set=label_set,
                    value=organ["value"],
                    defaults={
                        "name": organ["name"],
                        "display_name": organ["display_name"],
                        "color": organ["color"],
                        "aliases": organ.get("aliases", []),
                    },
                )
    return len(data)


def sync_error_tags(*, tag_model=None) -> int:
    """Create or update the error taxonomy of fixtures/error_tags.json."""
    if tag_model is None:
        from annotation.models import ErrorTag as tag_model
    entries = json.loads((FIXTURES / "error_tags.json").read_text())
    for entry in entries:
        tag_model.objects.update_or_create(code=entry["code"], defaults={"name": entry["name"],
                                                                         "description": entry["description"]})
    return len(entries)


def sync_roles(*, group_model=None) -> None:
    """The role groups: annotator, lead, admin."""
    from annotation.roles import ROLES

    if group_model is None:
        from django.contrib.auth.models import Group as group_model
    for name in ROLES:
        group_model.objects.get_or_create(name=name)


def sync_reference_data() -> None:
    with transaction.atomic():
        sync_label_sets()
        sync_error_tags()
        sync_roles()
