"""NRRD label maps, read in pure Python under our own limits: no byte of an upload reaches a native image parser.

3D Slicer saves label maps as NRRD (`.nrrd`, `.seg.nrrd`). ITK's reader follows whatever the header names (a detached
`data file:` anywhere on the server, `LIST`s of files, byte skips), crashes on long lines and is quadratic in the
number of `key:=value` lines, so an annotator's upload is never handed to it (security issue #23). This reader
accepts the one shape of NRRD a label map needs and refuses, with an ImageError naming the file and the field,
everything else, deciding from the header alone before a voxel is read.

Header, read in chunks of HEADER_CHUNK bytes from a descriptor opened non-blocking and checked to be a regular file
(a FIFO or a device is refused, never waited on):
- the magic `NRRD000N` (N 1 to 5), then lines ending in `\\n` (a `\\r` before it is dropped), ended by the first
  empty line; the data follow it in the same file (attached data only);
- at most MAX_HEADER_BYTES in all, MAX_LINE_BYTES a line and MAX_HEADER_LINES lines (the magic, comments and
  `key:=value` pairs included): past any of them the file is refused without reading further, so time and memory
  are bounded whatever follows (2 million `key:=value` lines cost one 64 KiB read);
- printable ASCII and tabs only (no NUL, no other control or non-ASCII byte);
- each line a comment (`#...`), a `key:=value` pair (any line holding `:=`, as teem decides; counted and ignored)
  or a `field: description`; a field given twice (under either of its spellings) is refused.

Fields (names and enumerated values in any letter case, runs of blanks counting as one):
- required: `dimension` (3, or 4 whose first axis is not a space axis and has size 1: one layer of a `.seg.nrrd`),
  `type` (the signed and unsigned 8 to 64-bit integer types under every spelling the spec gives), `sizes`
  (integers of at most MAX_DIGITS digits, each at least 2 on the space axes), `encoding` (raw, or gzip / gz),
  `space` (left-posterior-superior / LPS, right-anterior-superior / RAS, left-anterior-superior / LAS),
  `space directions` (finite, not singular); `endian` (little / big) when an item is more than one byte;
- optional: `space origin` (finite; (0, 0, 0) when absent, as ITK takes it), `space dimension` (3), `kinds`
  (`domain` / `space` / `???` on the space axes, a non-spatial kind on a 4D file's first axis);
- accepted and ignored: content, centers / centerings, labels, units, space units, thicknesses, measurement frame,
  min, max, old min / oldmin, old max / oldmax, sample units;
- refused: detached data (`data file` / `datafile`), skips (`byte skip` / `byteskip`, `line skip` / `lineskip`),
  other encodings (ascii / text / txt, hex, bzip2 / bz2), float / double / block types, `block size`, `number`,
  `spacings`, `axis mins`, `axis maxs` (the geometry comes from `space directions` alone), other spaces (scanner-xyz,
  3D-right-handed, time spaces...), and any field this list does not name.

Then, still before any data byte: the voxels' memory (8 bytes a voxel, as for every label reader here) against
max_bytes, and the shape against expect_shape (in any axis order). The data are read once: raw exactly the declared
bytes; gzip inflated no further than them (ml_engine.io.gz, ISA-L when installed). A shorter stream is truncated,
a longer one or bytes after it are refused, as load_nifti does.
"""

from __future__ import annotations

import math
import os
import re
import stat
from pathlib import Path

import numpy as np

from ml_engine.io.errors import ImageError, short_error
from ml_engine.io.gz import read_voxel_bytes
from ml_engine.io.nifti import Volume

MAX_HEADER_BYTES = 64 * 1024  # the whole header: magic, fields, comments, key:=value pairs and the ending blank line
MAX_LINE_BYTES = 1024  # one header line, its line end not counted
MAX_HEADER_LINES = 1024  # header lines, the magic and the ending blank line included
HEADER_CHUNK = 4096  # the header is read in reads of at most this many bytes, never past MAX_HEADER_BYTES
MAX_DIGITS = 12  # an integer (dimension, a size) of more digits is refused before it is converted
MAX_NUMBER_CHARS = 40  # a coordinate of more characters is refused before it is converted

NRRD_SUFFIXES = (".seg.nrrd", ".nrrd")

LAYERS_PROBLEM = "(overlapping segments: save a label map without overlaps)"

# The spec's spellings of the integer types (teem's format page, "type"); float, double and block are refused.
_TYPES: dict[str, str] = {}
for _code, _names in {
    "i1": ("signed char", "int8", "int8_t"),
    "u1": ("uchar", "unsigned char", "uint8", "uint8_t"),
    "i2": ("short", "short int", "signed short", "signed short int", "int16", "int16_t"),
    "u2": ("ushort", "unsigned short", "unsigned short int", "uint16", "uint16_t"),
    "i4": ("int", "signed int", "int32", "int32_t"),
    "u4": ("uint", "unsigned int", "uint32", "uint32_t"),
    "i8": ("longlong", "long long", "long long int", "signed long long", "signed long long int", "int64", "int64_t"),
    "u8": ("ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t"),
}.items():
    _TYPES.update(dict.fromkeys(_names, _code))
_NOT_INTEGER_TYPES = ("float", "double", "block")

_ENCODINGS = {"raw": False, "gzip": True, "gz": True}
_REFUSED_ENCODINGS = ("ascii", "text", "txt", "hex", "bzip2", "bz2")

# space -> the diagonal that takes its coordinates to RAS+ (each is the spec's long name or its abbreviation)
_SPACES = {
    "left-posterior-superior": (-1.0, -1.0, 1.0), "lps": (-1.0, -1.0, 1.0),
    "right-anterior-superior": (1.0, 1.0, 1.0), "ras": (1.0, 1.0, 1.0),
    "left-anterior-superior": (-1.0, 1.0, 1.0), "las": (-1.0, 1.0, 1.0),
}

_SPATIAL_KINDS = frozenset({"domain", "space", "time"})
_SPACE_AXIS_KINDS = frozenset({"domain", "space", "???"})
_NON_SPATIAL_KINDS = frozenset({
    "list", "point", "vector", "covariant-vector", "normal", "stub", "scalar", "complex", "2-vector", "3-color",
    "rgb-color", "hsv-color", "xyz-color", "4-color", "rgba-color", "3-vector", "3-gradient", "3-normal", "4-vector",
    "quaternion", "2d-symmetric-matrix", "2d-masked-symmetric-matrix", "2d-matrix", "2d-masked-matrix",
    "3d-symmetric-matrix", "3d-masked-symmetric-matrix", "3d-matrix", "3d-masked-matrix", "???", "none",
})

# Every field name accepted, under each spelling, -> its one name (duplicates are found by that name).
_USED = ("dimension", "type", "sizes", "encoding", "endian", "space", "space dimension", "space directions",
         "space origin", "kinds")
_IGNORED = ("content", "centers", "labels", "units", "space units", "thicknesses", "measurement frame", "min", "max",
            "old min", "old max", "sample units")
_FIELDS = {name: name for name in (*_USED, *_IGNORED)}
_FIELDS.update({"centerings": "centers", "oldmin": "old min", "oldmax": "old max"})
# Refused, with the reason given in the message.
_REFUSED_FIELDS = {
    "data file": "detached data files are not accepted: the data must follow the header in the same file",
    "datafile": "detached data files are not accepted: the data must follow the header in the same file",
    "byte skip": "skipping bytes before the data is not accepted",
    "byteskip": "skipping bytes before the data is not accepted",
    "line skip": "skipping lines before the data is not accepted",
    "lineskip": "skipping lines before the data is not accepted",
    "block size": "block types are not accepted: label voxels are integers",
    "blocksize": "block types are not accepted: label voxels are integers",
    "number": "not accepted (the number of voxels comes from sizes)",
    "spacings": "not accepted: the geometry must come from space directions",
    "axis mins": "not accepted: the geometry must come from space directions",
    "axismins": "not accepted: the geometry must come from space directions",
    "axis maxs": "not accepted: the geometry must come from space directions",
    "axismaxs": "not accepted: the geometry must come from space directions",
}

_MAGIC = re.compile(rb"NRRD000[1-5]")
_UNPRINTABLE = re.compile(rb"[^\t\x20-\x7e]")
_INTEGER = re.compile(r"[0-9]+", re.ASCII)
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_VECTOR_OR_NONE = re.compile(r"\s*(none|\([^()]*\))", re.ASCII | re.IGNORECASE)


def is_nrrd(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(NRRD_SUFFIXES)


def load_nrrd(path: str | os.PathLike, *, max_bytes: int, expect_shape: tuple[int, ...] | None = None) -> Volume:
    """Read a NRRD label map as a Volume: data (x, y, z) native-endian integers, affine (4, 4) voxel-to-RAS+.

    Everything is decided from the header (see the module's doc) before a data byte is read: the voxels' memory
    counted at 8 bytes each against max_bytes, and, with expect_shape, the shape as a permutation of it. The data
    are then read once, inflated no further than the header promises. ImageError names the file and the problem.
    """
    path = Path(path)
    with _open_regular(path) as handle:
        lines, data_offset = read_header(handle, path)
        header = parse_header(lines, path)
        shape, dtype, gz, affine = _interpret(header, path)
        count = int(np.prod(shape, dtype=object))
        if count * 8 > max_bytes:
            raise ImageError(path, f"volume of size {shape} exceeds the limit of {max_bytes} bytes")
        if expect_shape is not None and sorted(shape) != sorted(int(s) for s in expect_shape):
            raise ImageError(path, f"shape {shape} differs from the CT's {tuple(int(s) for s in expect_shape)}")
        raw = read_voxel_bytes(path, gz=gz, offset=0, nbytes=count * dtype.itemsize, start=data_offset,
                               handle=handle)
    data = np.frombuffer(raw, dtype=dtype, count=count).reshape(shape, order="F")
    if not dtype.isnative:
        data = data.astype(dtype.newbyteorder("="))
    return Volume(data=data, affine=affine)


def _open_regular(path: Path):
    """The file opened for buffered binary reading, without blocking (a FIFO opens at once) and refused unless the
    opened descriptor is a regular file (FIFO, device, socket, directory): what is checked is what is read.

    A symbolic link is followed (no O_NOFOLLOW): the path is never the sender's to choose (an upload is Atlas's own
    copy under a name it made; an import names the admin's files, which may be links into a data folder), and
    whatever the link leads to must still be a regular file."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError as exc:
        raise ImageError(path, "no such file") from exc
    except OSError as exc:
        raise ImageError(path, f"cannot be opened ({short_error(exc)})") from exc
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ImageError(path, "not a regular file (a FIFO, device, socket or folder is never read)")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_header(handle, path: Path) -> tuple[list[str], int]:
    """The header lines after the magic (ASCII text, line ends dropped) and the offset of the data in the file.

    Reads at most MAX_HEADER_BYTES from handle (a binary file at its start), in reads of at most HEADER_CHUNK bytes,
    and refuses a file without the magic, a line longer than MAX_LINE_BYTES, more than MAX_HEADER_LINES lines, a
    header with no blank line within MAX_HEADER_BYTES, and any byte that is not printable ASCII or a tab.
    """
    buf = bytearray()
    lines: list[str] = []
    start = 0  # where the current line begins in buf
    number = 0  # lines seen, the magic included
    while True:
        end = buf.find(b"\n", start)
        if end < 0:
            if len(buf) - start > MAX_LINE_BYTES:
                raise ImageError(path, f"NRRD header line {number + 1} is longer than {MAX_LINE_BYTES} bytes")
            if len(buf) >= MAX_HEADER_BYTES:
                raise ImageError(path, f"NRRD header longer than {MAX_HEADER_BYTES} bytes (no blank line ends it)")
            chunk = handle.read(min(HEADER_CHUNK, MAX_HEADER_BYTES - len(buf)))
            if not chunk:
                if number == 0 and not _MAGIC.match(buf):
                    raise ImageError(path, "not a NRRD file (no NRRD000N magic)")
                raise ImageError(path, "the NRRD header has no blank line ending it (the file ends in its header)")
            buf += chunk
            if number == 0 and len(buf) >= 8 and not _MAGIC.match(buf):
                raise ImageError(path, "not a NRRD file (no NRRD000N magic)")
            continue
        line = bytes(buf[start:end])
        start = end + 1
        number += 1
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > MAX_LINE_BYTES:
            raise ImageError(path, f"NRRD header line {number} is longer than {MAX_LINE_BYTES} bytes")
        if number > MAX_HEADER_LINES:
            raise ImageError(path, f"NRRD header of more than {MAX_HEADER_LINES} lines")
        if (bad := _UNPRINTABLE.search(line)) is not None:
            raise ImageError(path, f"NRRD header line {number} holds a byte that is not printable ASCII "
                                   f"(0x{bad.group()[0]:02x})")
        if number == 1:
            if not _MAGIC.fullmatch(line):
                raise ImageError(path, "not a NRRD file (no NRRD000N magic)")
            continue
        if not line:
            return lines, start
        lines.append(line.decode("ascii"))


def parse_header(lines: list[str], path: Path) -> dict[str, str]:
    """{field's one name: its description} from the header lines after the magic; comments and key:=value pairs
    dropped. Refuses a line of another form, a refused or unknown field and a field given twice."""
    fields: dict[str, str] = {}
    for number, line in enumerate(lines, start=2):
        if line.startswith("#") or ":=" in line:
            continue
        name, sep, desc = line.partition(": ")
        if not sep:
            raise ImageError(path, f"NRRD header line {number} is neither a comment, a 'field: value' nor a "
                                   f"'key:=value' ({line[:60]!r})")
        spelled = " ".join(name.split()).lower()
        if spelled in _REFUSED_FIELDS:
            raise ImageError(path, f"NRRD field {spelled!r}: {_REFUSED_FIELDS[spelled]}")
        field = _FIELDS.get(spelled)
        if field is None:
            raise ImageError(path, f"NRRD field {name[:60]!r} is not accepted in a label map")
        if field in fields:
            raise ImageError(path, f"NRRD field {field!r} is given twice")
        fields[field] = " ".join(desc.split())
    return fields


def _interpret(fields: dict[str, str], path: Path) -> tuple[tuple[int, int, int], np.dtype, bool, np.ndarray]:
    """(shape (x, y, z), the data's dtype as stored, gzip or raw, affine (4, 4) voxel-to-RAS+) from the fields."""

    def need(field: str) -> str:
        if field not in fields:
            raise ImageError(path, f"NRRD field {field!r} is missing")
        return fields[field]

    def problem(field: str, what: str) -> ImageError:
        return ImageError(path, f"NRRD field {field!r}: {what}")

    dimension = _integer(need("dimension"), "dimension", path)
    if dimension not in (3, 4):
        raise problem("dimension", f"expected one 3D label map, found dimension {dimension}")
    sizes = [_integer(token, "sizes", path) for token in need("sizes").split()[: dimension + 1]]
    if len(sizes) != dimension:
        raise problem("sizes", f"{len(sizes)} sizes for dimension {dimension}")
    if min(sizes) < 1:
        raise problem("sizes", f"a size of 0 ({' '.join(map(str, sizes))})")

    kind = need("type").lower()
    if kind in _NOT_INTEGER_TYPES:
        raise problem("type", f"expected integer voxels, found {kind}")
    if kind not in _TYPES:
        raise problem("type", f"unknown type {kind[:40]!r}")
    encoding = need("encoding").lower()
    if encoding in _REFUSED_ENCODINGS:
        raise problem("encoding", f"{encoding} is not accepted (raw or gzip only)")
    if encoding not in _ENCODINGS:
        raise problem("encoding", f"unknown encoding {encoding[:40]!r} (raw or gzip only)")
    code = _TYPES[kind]
    endian = fields.get("endian", "").lower()
    if endian not in ("", "little", "big"):
        raise problem("endian", f"expected little or big, found {endian[:40]!r}")
    if code[1] != "1" and not endian:
        raise ImageError(path, f"NRRD field 'endian' is missing (needed for {kind})")
    dtype = np.dtype(("<" if endian != "big" else ">") + code)

    space = need("space").lower()
    if space not in _SPACES:
        raise problem("space", f"{space[:40]!r} is not accepted (left-posterior-superior, right-anterior-superior "
                               f"or left-anterior-superior)")
    if "space dimension" in fields and _integer(fields["space dimension"], "space dimension", path) != 3:
        raise problem("space dimension", f"{fields['space dimension']} is not the 3 of space {space}")

    directions = _vectors(need("space directions"), "space directions", dimension, path)
    kinds = fields["kinds"].lower().split() if "kinds" in fields else None
    if kinds is not None and len(kinds) != dimension:
        raise problem("kinds", f"{len(kinds)} kinds for dimension {dimension}")
    if dimension == 4:
        first_is_space = directions[0] is not None or (kinds is not None and kinds[0] in _SPATIAL_KINDS)
        if first_is_space:
            raise problem("dimension", "expected one 3D label map, found 4 dimensions whose first axis is a "
                                       "space axis")
        if kinds is not None and kinds[0] not in _NON_SPATIAL_KINDS:
            raise problem("kinds", f"unknown kind {kinds[0][:40]!r}")
        if sizes[0] != 1:
            raise ImageError(path, f"expected one 3D label map, found size {tuple(sizes[1:])} with {sizes[0]} "
                                   f"layer(s) {LAYERS_PROBLEM}")
        sizes, directions, kinds = sizes[1:], directions[1:], (kinds[1:] if kinds is not None else None)
    if any(d is None for d in directions):
        raise problem("space directions", "'none' for a space axis")
    if kinds is not None and (bad := [k for k in kinds if k not in _SPACE_AXIS_KINDS]):
        raise problem("kinds", f"{bad[0][:40]!r} for a space axis (domain or space expected)")
    shape = (sizes[0], sizes[1], sizes[2])
    if min(shape) < 2:
        raise problem("sizes", f"expected a 3D volume, found a single slice of shape {shape}")

    matrix = np.array(directions, dtype=np.float64).T  # column i: axis i's step in the named space
    with np.errstate(over="ignore", invalid="ignore"):
        det = float(np.linalg.det(matrix))
    if not math.isfinite(det) or abs(det) < 1e-9:
        raise problem("space directions", "singular or not finite")
    origin = np.zeros(3)
    if "space origin" in fields:
        vectors = _vectors(fields["space origin"], "space origin", 1, path)
        if vectors[0] is None:
            raise problem("space origin", "'none'")
        origin = np.array(vectors[0], dtype=np.float64)
    to_ras = np.diag(_SPACES[space])
    affine = np.eye(4)
    affine[:3, :3] = to_ras @ matrix
    affine[:3, 3] = to_ras @ origin
    if not np.all(np.isfinite(affine)):
        raise problem("space directions", "not finite")
    return shape, dtype, _ENCODINGS[encoding], affine


def _integer(text: str, field: str, path: Path) -> int:
    if len(text) > MAX_DIGITS or not _INTEGER.fullmatch(text):
        raise ImageError(path, f"NRRD field {field!r}: {text[:40]!r} is not an integer of at most {MAX_DIGITS} "
                               f"digits")
    return int(text)


def _vectors(desc: str, field: str, count: int, path: Path) -> list[tuple[float, float, float] | None]:
    """count items of desc, each 'none' (None) or a 3-vector '(a,b,c)' of finite numbers."""
    items: list[tuple[float, float, float] | None] = []
    pos = 0
    while pos < len(desc) and len(items) <= count:
        match = _VECTOR_OR_NONE.match(desc, pos)
        if match is None:
            if desc[pos:].strip() == "":
                break
            raise ImageError(path, f"NRRD field {field!r}: expected 'none' or '(x,y,z)', found "
                                   f"{desc[pos:pos + 40].strip()!r}")
        token = match.group(1)
        pos = match.end()
        if token.lower() == "none":
            items.append(None)
            continue
        parts = [p.strip() for p in token[1:-1].split(",")]
        if len(parts) != 3:
            raise ImageError(path, f"NRRD field {field!r}: {token[:40]!r} is not a 3-vector")
        values = []
        for part in parts:
            if len(part) > MAX_NUMBER_CHARS or not _NUMBER.fullmatch(part) or not math.isfinite(value := float(part)):
                raise ImageError(path, f"NRRD field {field!r}: {part[:40]!r} is not a finite number")
            values.append(value)
        items.append((values[0], values[1], values[2]))
    if len(items) != count:
        raise ImageError(path, f"NRRD field {field!r}: {'more' if len(items) > count else 'fewer'} than the "
                               f"{count} vector(s) expected")
    return items
