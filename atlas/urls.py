"""Top-level routes: admin, API (with schema and Swagger UI)."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # Swagger UI in two requests (page, then its init script) so that no inline script needs the CSP relaxed.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/", include("annotation.api.urls")),
    # 3D Slicer / OHIF / MONAI Label clients: point them at http://HOST:PORT/monailabel
    path("monailabel/", include("annotation.api.monailabel")),
]
