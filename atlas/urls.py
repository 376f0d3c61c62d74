"""Top-level routes: admin, API (with schema and Swagger UI), the site's icon. The page itself and its assets are
frontend_static/dist/, served by whitenoise (WHITENOISE_ROOT)."""

from pathlib import Path

from django.contrib import admin
from django.http import HttpResponse
from django.urls import include, path
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_safe
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

FAVICON = (Path(__file__).resolve().parent / "favicon.ico").read_bytes()


@require_safe
@cache_control(public=True, max_age=86400)
def favicon(request):
    """/favicon.ico, which browsers ask for on every page without a link to it (a 404 in the console otherwise)."""
    return HttpResponse(FAVICON, content_type="image/vnd.microsoft.icon")


urlpatterns = [
    path("favicon.ico", favicon),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # Swagger UI in two requests (page, then its init script) so that no inline script needs the CSP relaxed.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/", include("annotation.api.urls")),
    # 3D Slicer / OHIF / MONAI Label clients: point them at http://HOST:PORT/monailabel
    path("monailabel/", include("annotation.api.monailabel")),
]
