from django.db import migrations


def create_roles(apps, schema_editor):
    from annotation.services.reference_data import sync_roles

    sync_roles(group_model=apps.get_model("auth", "Group"))


class Migration(migrations.Migration):
    dependencies = [("annotation", "0002_label_sets"), ("auth", "0012_alter_user_first_name_max_length")]
    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
