"""WSGI entry point (gunicorn atlas.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "atlas.settings")
application = get_wsgi_application()

from annotation.storage import clean_scratch  # noqa: E402  (after Django is set up)

clean_scratch()  # upload temp files that a crashed process left under ATLAS_SCRATCH_DIR
