"""Label sets shipped in fixtures/label_sets.json, kept in the database by a data migration."""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.db import transaction

FIXTURE = Path(settings.BASE_DIR) / "fixtures" / "label_sets.json"


def read_fixture(path: Path = FIXTURE) -> list[dict]:
    return json.loads(path.read_text())


def sync_label_sets(*, label_set_model=None, organ_model=None, data: list[dict] | None = None) -> int:
    """Create or update every label set and organ of the fixture; returns how many sets were synced.

    The model classes are parameters so that the data migration can pass its historical models.
    """
    if label_set_model is None or organ_model is None:
        from annotation.models import LabelSet, Organ

        label_set_model, organ_model = LabelSet, Organ
    data = read_fixture() if data is None else data
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
