"""Serving stored files in chunks with ETag and HTTP Range, never reading them whole into memory."""

from __future__ import annotations

import hashlib
import re

from django.core.files.storage import default_storage
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse

CHUNK = 256 * 1024
# At most 18 digits a bound (below 2**63): a longer number cannot name a byte of a stored file, and int() of a very
# long one is refused by Python (a 500). Such a header gets 416 like any other unsatisfiable one.
_RANGE = re.compile(r"^bytes=(\d{0,18})-(\d{0,18})$")


def _etag(name: str, size: int) -> str:
    try:
        stamp = default_storage.get_modified_time(name).timestamp()
    except (NotImplementedError, OSError):
        stamp = 0
    return '"' + hashlib.sha256(f"{name}:{size}:{stamp}".encode()).hexdigest()[:32] + '"'


def _chunks(handle, start: int, length: int):
    try:
        handle.seek(start)
        left = length
        while left > 0:
            block = handle.read(min(CHUNK, left))
            if not block:
                break
            left -= len(block)
            yield block
    finally:
        handle.close()


def storage_file_response(request: HttpRequest, name: str | None, *, filename: str) -> HttpResponse:
    """Stream the stored file `name`: 200, 206 for a satisfiable single Range, 304 on a matching ETag, 416."""
    if not name or not default_storage.exists(name):
        raise Http404("no such file")
    size = default_storage.size(name)
    etag = _etag(name, size)
    common = {"ETag": etag, "Accept-Ranges": "bytes", "Cache-Control": "private, no-cache",
              "Content-Disposition": f'inline; filename="{filename}"'}
    if etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
        response = HttpResponse(status=304)
        for key, value in common.items():
            response[key] = value
        return response
    start, length, status = 0, size, 200
    header = request.headers.get("Range")
    if header and request.headers.get("If-Range", etag) == etag:
        match = _RANGE.match(header.strip())
        if match is None or (not match.group(1) and not match.group(2)):
            return _unsatisfiable(size)
        first, last = match.groups()
        if first:
            start = int(first)
            end = min(int(last), size - 1) if last else size - 1
        else:  # suffix range: the last N bytes
            start, end = max(0, size - int(last)), size - 1
        if start >= size or end < start:
            return _unsatisfiable(size)
        length, status = end - start + 1, 206
    response = StreamingHttpResponse(_chunks(default_storage.open(name, "rb"), start, length), status=status,
                                     content_type="application/gzip" if name.endswith(".gz") else
                                     "application/octet-stream")
    response["Content-Length"] = str(length)
    if status == 206:
        response["Content-Range"] = f"bytes {start}-{start + length - 1}/{size}"
    for key, value in common.items():
        response[key] = value
    return response


def _unsatisfiable(size: int) -> HttpResponse:
    response = HttpResponse(status=416)
    response["Content-Range"] = f"bytes */{size}"
    return response
