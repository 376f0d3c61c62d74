from django.db import migrations


def load(apps, schema_editor):
    from annotation.services.reference_data import sync_error_tags

    sync_error_tags(tag_model=apps.get_model("annotation", "ErrorTag"))


class Migration(migrations.Migration):
    dependencies = [("annotation", "0004_workflow")]
    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
