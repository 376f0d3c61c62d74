"""Review for leads: the queue of revisions waiting for a verdict, "next to review" (a lease), one revision as the
review view shows it (what it changed against the label it was made from, its files and the diff volume), edit and
accept, adjudicating a double read, setting a round's double reads, quality flags (JSON or CSV, `export=csv`). The
plain verdict is POST /api/revisions/{id}/review/.

views: one view per operation; serializers: their bodies and answers; export: the CSV; urls: the routes.
"""

from annotation.api.review.export import csv_cell, flags_csv
from annotation.api.review.urls import urlpatterns

__all__ = ["csv_cell", "flags_csv", "urlpatterns"]
