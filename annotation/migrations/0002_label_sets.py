from django.db import migrations


def load(apps, schema_editor):
    from annotation.services.reference_data import sync_label_sets

    sync_label_sets(label_set_model=apps.get_model("annotation", "LabelSet"),
                    organ_model=apps.get_model("annotation", "Organ"))


class Migration(migrations.Migration):
    dependencies = [("annotation", "0001_initial")]
    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
