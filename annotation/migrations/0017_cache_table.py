"""The database cache's table (settings.CACHES without ATLAS_CACHE_URL), so that `manage.py migrate` alone makes a
working site: the sign-in gate's counters live there (annotation/signin.py). Created whatever the cache setting is
now, so that a site can leave Redis later; kept on reversal (createcachetable skips a table that exists)."""

from django.core.management import call_command
from django.db import migrations

CACHE_TABLE = "atlas_cache"  # settings.CACHES["default"]["LOCATION"]


def create_cache_table(apps, schema_editor):
    call_command("createcachetable", CACHE_TABLE, database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):

    dependencies = [
        ("annotation", "0016_monailabel_image_links"),
    ]

    operations = [
        migrations.RunPython(create_cache_table, migrations.RunPython.noop),
    ]
