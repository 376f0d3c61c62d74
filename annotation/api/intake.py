"""The one upload intake: every file a client sends comes in here, and these rules live nowhere else.

The doors: `POST /api/tasks/{id}/revisions/` (field `file`), `POST /api/review/revisions/{id}/edit-accept/` (`file`)
and MONAI Label's `PUT /monailabel/datastore/label` (`label`). For each, in this order:

1. **Size, before a byte is read** (`BodySizeLimit`, a middleware, for every route): a body declared larger than the
   route allows is refused with 413 naming the field. Upload doors allow ATLAS_MAX_UPLOAD_BYTES; every other route
   DATA_UPLOAD_MAX_MEMORY_SIZE (DRF's JSON parser reads the stream without Django's own check).
2. **Who may send it, before the body is parsed**: the door's `authorize` (the task's lease, the review lease, the
   image id's lease) runs before `request.data` is touched. A session's CSRF token is read from its header only
   (annotation.api.session.SessionAuthentication), so that authenticating does not parse the body either.
3. **Type**: the file's name ends in one of the door's suffixes (NIfTI; NRRD on the Slicer door). Nothing else is
   accepted: no DICOM, no archives, nothing a native parser would read.
4. **A scratch copy**, counted as it is written (a body longer than declared is 413 too), removed afterwards whatever
   happens (annotation.storage.scratch_dir; a crash leaves it to clean_scratch).
5. **The parse**, by the door's service, with ml_engine's readers under the case's limits: NIfTI header first,
   inflated no further than the header allows; NRRD by a pure-Python reader (attached data only, a capped header).
   No user byte reaches a native image parser in a web process; DICOM comes in by `import_cases` only, decoded in a
   sandboxed child process (ml_engine.io.sandbox).

Every refusal has one shape: `{"detail": "FIELD: problem", "field": FIELD, ...}` with 400, 403, 404, 409 or 413.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.http import JsonResponse

from annotation.errors import Invalid, TooLarge
from annotation.storage import scratch_dir

_BLOCK = 1 << 20


def _describe(suffixes: tuple[str, ...]) -> str:
    """'NIfTI (.nii or .nii.gz)', 'NIfTI or NRRD (.nii, .nii.gz, .nrrd or .seg.nrrd)'."""
    kinds = [kind for kind, part in (("NIfTI", ".nii"), ("NRRD", ".nrrd")) if any(part in s for s in suffixes)]
    names = sorted(suffixes)
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    return f"{' or '.join(kinds) or 'one of'} ({listed})"


def _too_large(field: str, limit: int) -> TooLarge:
    return TooLarge(f"the upload is larger than the limit of {limit} bytes", field=field)


def upload_door(field: str):
    """Class decorator: this view receives one file in the multipart field `field` (BodySizeLimit allows it
    ATLAS_MAX_UPLOAD_BYTES)."""

    def mark(view_class):
        view_class.upload_field = field
        return view_class

    return mark


class BodySizeLimit:
    """Middleware: refuse a body declared larger than its route allows with 413, before any byte of it is read."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        field = getattr(getattr(view_func, "view_class", None), "upload_field", None)
        limit = settings.ATLAS_MAX_UPLOAD_BYTES if field else settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        declared = request.META.get("CONTENT_LENGTH") or "0"
        if not declared.isdigit() or len(declared) > 20:
            return JsonResponse(Invalid(f"{declared[:40]!r} is not a number of bytes",
                                        field="Content-Length").body(), status=400)
        if limit is not None and int(declared) > limit:  # Django's setting may be None: no limit
            error = _too_large(field or "body", limit)
            return JsonResponse(error.body(), status=error.status_code)
        return None


@contextmanager
def receive(request, *, field: str, suffixes: tuple[str, ...], authorize: Callable[[], object]) -> Iterator[Path]:
    """The intake for one upload door (see the module's doc): authorize, then the body, the type, a scratch copy.

    suffixes: what the door's service reads (its UPLOAD_SUFFIXES); authorize: the door's check of who may send it
    (raises a DomainError), run before the body is parsed.
    Yields the scratch copy's path (named with the file's suffix, which picks the reader); the copy is removed when
    the block ends, however it ends. The other form fields are in request.data.
    """
    limit = settings.ATLAS_MAX_UPLOAD_BYTES
    authorize()
    data = request.data
    upload = data.get(field) if hasattr(data, "get") else None
    if upload is None or not hasattr(upload, "read"):
        raise Invalid(f"missing: the label file (multipart field {field!r})", field=field)
    name = str(getattr(upload, "name", "") or "")
    suffix = next((s for s in suffixes if name.lower().endswith(s)), None)
    if suffix is None:
        raise Invalid(f"{name[:80]!r} is not {_describe(suffixes)}", field=field)
    if (getattr(upload, "size", None) or 0) > limit:
        raise _too_large(field, limit)
    with scratch_dir("upload") as tmp:
        path = tmp / f"upload{suffix}"
        written = 0
        with open(path, "wb") as handle:
            while block := upload.read(_BLOCK):
                written += len(block)
                if written > limit:
                    raise _too_large(field, limit)
                handle.write(block)
        yield path
