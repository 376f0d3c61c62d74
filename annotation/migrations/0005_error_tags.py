import json
from pathlib import Path

from django.db import migrations

FIXTURE = Path(__file__).resolve().parent.parent.parent / "fixtures" / "error_tags.json"


def load(apps, schema_editor):
    tag = apps.get_model("annotation", "ErrorTag")
    for entry in json.loads(FIXTURE.read_text()):
        tag.objects.update_or_create(code=entry["code"], defaults={"name": entry["name"],
                                                                   "description": entry["description"]})


class Migration(migrations.Migration):
    dependencies = [("annotation", "0004_workflow")]
    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
