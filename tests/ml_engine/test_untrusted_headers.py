"""Untrusted label files (Hypothesis): whatever the header and the bytes after it, the NRRD reader and load_nifti
either give a Volume within the limits or raise ImageError, never another exception, and never read past what the
header promises (a detached data file, a bomb, a truncated stream). Examples are derandomized, so CI sees the same
ones every run; each example gets a deadline of a few seconds, far above the milliseconds one takes."""

from __future__ import annotations

import functools
import gzip
import io as stdio
import logging
import os
import re
import struct
import tempfile
from datetime import timedelta
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ml_engine import io
from ml_engine.io import nrrd

MAX_BYTES = 1 << 20
SHAPE = (7, 6, 5)
SECRET = 77  # every voxel of the file a detached header names: a Volume holding it read another file


@pytest.fixture(autouse=True, scope="module")
def _quiet_nibabel():
    """nibabel logs each header it fixes (hundreds here): kept out of the test output."""
    logger = logging.getLogger("nibabel")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


SETTINGS = dict(deadline=timedelta(seconds=5), derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def checked(volume: io.Volume | None, *, max_bytes: int, expect_shape, integers: bool, per_voxel: int | None = None
            ) -> None:
    """The invariants of a Volume a reader accepted: per_voxel, the bytes a voxel is counted for against max_bytes
    (8 for NRRD; NIfTI counts its stored type, 8 once scaled to floats)."""
    if volume is None:
        return
    data = volume.data
    assert data.ndim == 3 and min(data.shape) >= 2
    assert data.size * (per_voxel or data.dtype.itemsize) <= max_bytes
    assert data.dtype.isnative and (data.dtype.kind in "iu" if integers else data.dtype.kind in "iuf")
    if data.dtype.kind == "f":
        assert np.all(np.isfinite(data))
    if expect_shape is not None:
        assert sorted(data.shape) == sorted(expect_shape)
    assert volume.affine.shape == (4, 4) and np.all(np.isfinite(volume.affine))
    assert abs(np.linalg.det(volume.affine[:3, :3])) >= 1e-9
    assert np.array_equal(volume.affine[3], [0, 0, 0, 1])


def read(reader, path: Path, **kwargs) -> io.Volume | None:
    """The reader's Volume, or None when it raised ImageError naming the file (any other exception fails the test)."""
    try:
        volume = reader(path, **kwargs)
    except io.ImageError as exc:
        assert str(exc).startswith(f"{path}: ") and exc.problem
        event(f"{getattr(reader, '__name__', reader)}: {re.sub(r'[0-9]+', 'N', exc.problem)[:50]}")
        return None
    event(f"{getattr(reader, '__name__', reader)}: a volume")
    return volume


# --- NRRD: headers from the grammar, mutated from a valid one, and raw bytes ---

FIELD_NAMES = sorted({*nrrd._FIELDS, *nrrd._REFUSED_FIELDS, "Type", "SIZES", "space  directions", "spacing", "",
                      "data file ", "key", "NRRD0004"})
VALID = {
    "type": "unsigned char",
    "dimension": "3",
    "space": "left-posterior-superior",
    "sizes": "7 6 5",
    "space directions": "(0,-0.8,0) (0.7,0,0) (0,0,2.5)",
    "kinds": "domain domain domain",
    "endian": "little",
    "encoding": "raw",
    "space origin": "(-120.5,95.25,-300)",
}
ALTERNATIVES = {
    "type": [*nrrd._TYPES, "float", "double", "block", "char", "int 8"],
    "dimension": ["0", "1", "2", "4", "5", "16", "-3", "3.0", "99999999999999", " 3"],
    "space": [*nrrd._SPACES, "scanner-xyz", "3D-right-handed", "RAST", "LPS "],
    "sizes": ["1 7 6 5", "2 7 6 5", "7 6", "7 6 5 4", "7 6 1", "0 6 5", "4096 4096 4096", "999999999999 1 1",
              f"{2**63} 2 2", "7 6 -5", "7 6 5.0"],
    "space directions": ["none (0,-0.8,0) (0.7,0,0) (0,0,2.5)", "(1,0,0) (0,1,0)", "(1,0,0) (1,0,0) (0,0,1)",
                         "(nan,0,0) (0,1,0) (0,0,1)", "(1e308,0,0) (0,1e308,0) (0,0,1e308)", "none none none",
                         "(1,0,0) none (0,0,1)", "((1,0,0) (0,1,0) (0,0,1)", "(1,0,0,0) (0,1,0) (0,0,1)"],
    "kinds": ["list domain domain domain", "vector domain domain", "space space space", "??? ??? ???", "time a b"],
    "endian": ["big", "middle", ""],
    "encoding": ["gzip", "gz", "ascii", "text", "hex", "bzip2", "bz2", "raw gzip", ""],
    "space origin": ["(0,0,0)", "(nan,0,0)", "(inf,0,0)", "none", "(0,0)", "(1e400,0,0)", "0 0 0"],
}
numbers = st.one_of(st.integers(min_value=-10, max_value=2**70).map(str),
                    st.floats(allow_nan=True, allow_infinity=True).map(repr))
vectors = st.lists(st.one_of(st.just("none"), st.lists(numbers, max_size=4).map(lambda v: f"({','.join(v)})")),
                   max_size=5).map(" ".join)
texts = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)  # header text; noise: below
any_value = st.one_of(texts, numbers, vectors, st.lists(numbers, max_size=5).map(" ".join),
                      st.integers(min_value=900, max_value=1200).map(lambda n: "x" * n))


@st.composite
def lines(draw) -> str:
    """One header line: a field from the grammar, a comment, a key:=value pair, a detached file, or noise."""
    kind = draw(st.sampled_from(["field"] * 4 + ["comment", "keyvalue", "keyvalue", "detached", "detached", "noise",
                                                 "long"]))
    if kind == "field":
        name = draw(st.sampled_from(FIELD_NAMES))
        value = draw(st.one_of(st.sampled_from(ALTERNATIVES.get(name, [""])), any_value))
        return f"{name}: {value}"
    if kind == "comment":
        return "#" + draw(texts)
    if kind == "keyvalue":
        return f"{draw(texts.filter(lambda t: ':=' not in t))}:={draw(texts)}"
    if kind == "detached":
        return draw(st.sampled_from(["data file: {secret}", "datafile: LIST", "{secret}", "data file: {fifo}",
                                     "byte skip: -1", "byteskip: 0", "line skip: 1", "data file: {secret} 0 1 1",
                                     "data file: /dev/zero"]))
    if kind == "long":
        return draw(st.sampled_from(["content: ", "k:=", "#", "sizes: "])) + "7" * draw(
            st.integers(min_value=990, max_value=1100))
    return draw(st.binary(max_size=40)).decode("latin-1")


HARMLESS = st.one_of(  # lines a valid label map may carry, as often as it likes
    texts.map(lambda t: "#" + t), st.builds("{}:={}".format, texts.filter(lambda t: ":=" not in t), texts))
IGNORED = ["content: liver", "centerings: cell cell cell", "space units: \"mm\" \"mm\" \"mm\"",
           "measurement frame: (1,0,0) (0,1,0) (0,0,1)", "labels: \"\" \"\" \"\"", "min: 0", "max: 5", "old min: 0",
           "thicknesses: nan nan nan", "space dimension: 3"]  # fields a valid label map may carry, once each


@st.composite
def nrrd_files(draw) -> tuple[str, list[str], str, str]:
    """(profile, header lines after the magic, the magic, the data: a mode for data_bytes).

    profile "valid": a label map under any spelling of the spec we accept, with harmless lines; "mutated": a valid
    header with fields dropped or replaced and lines from the grammar inserted; "grammar": lines from the grammar.
    """
    profile = draw(st.sampled_from(["valid", "mutated", "mutated", "grammar"]))
    fields = dict(VALID)
    if profile == "grammar":
        body = draw(st.lists(lines(), max_size=25))
    else:
        fields["type"] = draw(st.sampled_from(sorted(nrrd._TYPES)))
        fields["space"] = draw(st.sampled_from(sorted(nrrd._SPACES)))
        fields["encoding"] = "raw"
        fields["endian"] = draw(st.sampled_from(["little", "big", "LITTLE"]))
        if draw(st.booleans()):  # one layer of a .seg.nrrd
            fields.update({"dimension": "4", "sizes": "1 " + VALID["sizes"], "kinds": "list domain domain domain",
                           "space directions": "none " + VALID["space directions"]})
        if profile == "mutated":
            for _ in range(draw(st.integers(min_value=1, max_value=4))):
                name = draw(st.sampled_from(sorted(VALID)))
                action = draw(st.sampled_from(["replace", "replace", "drop", "any"]))
                if action == "drop":
                    fields.pop(name, None)
                elif action == "replace":
                    fields[name] = draw(st.sampled_from(ALTERNATIVES[name]))
                else:
                    fields[name] = draw(any_value)
        order = draw(st.permutations(sorted(fields)))
        body = [f"{k}: {fields[k]}" for k in order]
        extra = lines() if profile == "mutated" else HARMLESS
        inserted = [draw(extra) for _ in range(draw(st.sampled_from([0, 1, 2, 3])))]
        if profile == "valid":
            inserted += draw(st.lists(st.sampled_from(IGNORED), unique=True, max_size=3))
        for line in inserted:
            body.insert(draw(st.integers(min_value=0, max_value=len(body))), line)
    if profile == "valid":
        many = draw(st.sampled_from([0, 0, 10, 1000]))  # key:=value lines, under the cap
        magic = draw(st.sampled_from(["NRRD0004", "NRRD0005", "NRRD0001"]))
    else:
        many = draw(st.sampled_from([0] * 6 + [10, 1000, 1100, 20000]))  # under and over the cap
        magic = draw(st.sampled_from(["NRRD0004"] * 40 + ["NRRD0005"] * 3 + ["NRRD0001"] * 2 + [
            "NRRD0006", "NRRD", "nrrd0004", "NRRD0004 "]))
    body += [f"Segment{i}_ID:=s{i}" for i in range(many)]
    data = draw(st.sampled_from(["exact"] * 4 + ["gzip"] * 4 + ["short", "long", "gzip-cut", "gzip-tail", "bomb",
                                                               "random", "none"]))
    if data != "exact" and data != "random":
        body = [re.sub(r"^encoding: raw$", f"encoding: {draw(st.sampled_from(['gzip', 'gz', 'GZIP']))}", line)
                for line in body] if data in ("gzip", "gzip-cut", "gzip-tail", "bomb") else body
    return profile, body, magic, data


@functools.cache
def payloads(itemsize: int) -> dict[str, bytes]:
    """The data after the header, by mode, for the sizes of VALID and items of itemsize bytes."""
    raw = bytes(np.arange(np.prod(SHAPE) * itemsize, dtype=np.uint8) % 50)  # never SECRET
    return {
        "exact": raw, "gzip": gzip.compress(raw), "short": raw[:-1], "long": raw + b"\0",
        "gzip-cut": gzip.compress(raw)[:-3], "gzip-tail": gzip.compress(raw) + gzip.compress(b"\0" * 5000),
        "bomb": gzip.compress(raw + b"\0" * (8 << 20)), "none": b"",
    }


def data_bytes(mode: str, itemsize: int, random: bytes) -> bytes:
    return random if mode == "random" else payloads(itemsize)[mode]


@settings(max_examples=300, **SETTINGS)
@given(case=nrrd_files(), random=st.binary(max_size=400), expect=st.sampled_from([None, SHAPE, (5, 6, 7), (7, 6, 4)]),
       max_bytes=st.sampled_from([MAX_BYTES, MAX_BYTES, 7 * 6 * 5 * 8 - 1]))
def test_nrrd_headers_give_a_bounded_volume_or_image_error(case, random, expect, max_bytes):
    profile, body, magic, mode = case
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        secret = folder / "secret.raw"
        secret.write_bytes(bytes([SECRET]) * (np.prod(SHAPE) * 8))
        fifo = folder / "fifo"
        os.mkfifo(fifo)
        text = "\n".join(body).replace("{secret}", str(secret)).replace("{fifo}", str(fifo))
        match = re.search(r"(?m)^type: (.*)$", text)
        code = nrrd._TYPES.get(" ".join(match.group(1).split()).lower(), "u1") if match else "u1"
        path = folder / "label.seg.nrrd"
        path.write_bytes(magic.encode() + b"\n" + text.encode("utf-8", "surrogateescape") + b"\n\n"
                         + data_bytes(mode, int(code[1]), random))
        volume = read(nrrd.load_nrrd, path, max_bytes=max_bytes, expect_shape=expect)
        checked(volume, max_bytes=max_bytes, expect_shape=expect, integers=True, per_voxel=8)
        if volume is not None:
            assert not np.any(volume.data == SECRET), "read the voxels of another file"
            assert mode in ("exact", "gzip", "random") and magic in ("NRRD0004", "NRRD0005", "NRRD0001")
            assert many_lines_ok(body)
        if profile == "valid" and mode in ("exact", "gzip") and expect != (7, 6, 4) and max_bytes == MAX_BYTES:
            assert volume is not None, "a valid label map was refused"
            endian = ">" if re.search(r"(?m)^endian: big$", text) else "<"
            stored = np.frombuffer(payloads(int(code[1]))["exact"], dtype=endian + code)
            assert np.array_equal(volume.data, stored.reshape(SHAPE, order="F"))


def many_lines_ok(body: list[str]) -> bool:
    return len(body) + 2 <= nrrd.MAX_HEADER_LINES and all(len(line) <= nrrd.MAX_LINE_BYTES for line in body)


@settings(max_examples=200, **SETTINGS)
@given(head=st.sampled_from([b"", b"NRRD0004\n", b"NRRD0004\ntype: uchar\n", b"NRRD0005\r\n"]),
       noise=st.binary(max_size=3000))
def test_raw_bytes_after_a_magic_are_refused_or_bounded(head, noise):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.nrrd"
        path.write_bytes(head + noise)
        volume = read(io.load_label_image, path, max_bytes=MAX_BYTES)
        checked(volume, max_bytes=MAX_BYTES, expect_shape=None, integers=True)


# --- NIfTI: bytes mutated from valid files; load_nifti decides from the header before any voxel ---

NIFTI1_FIELDS = {  # offset, struct format of the NIfTI-1 header fields worth aiming at
    "dim": (40, "<8h"), "datatype": (70, "<h"), "bitpix": (72, "<h"), "pixdim": (76, "<8f"),
    "vox_offset": (108, "<f"), "scl_slope": (112, "<f"), "scl_inter": (116, "<f"), "qform_code": (252, "<h"),
    "sform_code": (254, "<h"), "quatern": (256, "<6f"), "srow": (280, "<12f"), "sizeof_hdr": (0, "<i"),
}
shorts = st.one_of(st.sampled_from([0, 1, 2, 3, 4, 7, 8, 16, 64, 256, 512, 768, 1024, 1280, 1536, 2304, -1, 32767,
                                    -32768]), st.integers(min_value=-32768, max_value=32767))
floats32 = st.one_of(st.sampled_from([0.0, 1.0, -1.0, 1e-30, 1e30, 3.4e38, float("nan"), float("inf"), 352.0, 348.0,
                                      2.0**31]), st.floats(width=32, allow_nan=True, allow_infinity=True))


@st.composite
def nifti_files(draw) -> tuple[bytes, bool]:
    """(the bytes of a .nii or .nii.gz, whether gzipped): a valid small image, then its bytes mutated."""
    dtype = draw(st.sampled_from([np.uint8, np.int16, np.int32, np.int64, np.uint16, np.float32, np.float64]))
    shape = draw(st.sampled_from([SHAPE, (7, 6, 5, 1), (7, 6), (7, 6, 5, 2), (2, 2, 2)]))
    data = (np.arange(int(np.prod(shape))) % 9).astype(dtype).reshape(shape)
    cls = draw(st.sampled_from([nib.Nifti1Image, nib.Nifti1Image, nib.Nifti2Image]))
    image = cls(data, np.diag([0.8, 0.8, 2.5, 1.0]), dtype=dtype)
    if draw(st.booleans()):
        image.header.set_slope_inter(draw(st.sampled_from([2.0, 0.5, 1.0])), draw(st.sampled_from([0.0, -1024.0])))
    buffer = stdio.BytesIO()
    image.to_file_map({"image": nib.FileHolder(fileobj=buffer), "header": nib.FileHolder(fileobj=buffer)})
    raw = bytearray(buffer.getvalue())
    if cls is nib.Nifti1Image:
        for _ in range(draw(st.integers(min_value=0, max_value=3))):
            offset, fmt = NIFTI1_FIELDS[draw(st.sampled_from(sorted(NIFTI1_FIELDS)))]
            values = [draw(floats32 if fmt[-1] == "f" else shorts if fmt[-1] == "h" else
                           st.sampled_from([348, 540, 0, -1, 2**31 - 1])) for _ in range(struct.calcsize(fmt) // 4
                                                                                          if fmt[-1] in "fi" else
                                                                                          struct.calcsize(fmt) // 2)]
            struct.pack_into(fmt, raw, offset, *values)
    for _ in range(draw(st.integers(min_value=0, max_value=4))):  # flips anywhere in the header or the voxels
        at = draw(st.integers(min_value=0, max_value=len(raw) - 1))
        raw[at] = draw(st.integers(min_value=0, max_value=255))
    tail = draw(st.sampled_from(["", "", "cut", "junk", "zeros"]))
    if tail == "cut":
        raw = raw[: draw(st.integers(min_value=0, max_value=len(raw)))]
    elif tail == "junk":
        raw += draw(st.binary(min_size=1, max_size=100))
    elif tail == "zeros":
        raw += b"\0" * (4 << 20)  # a bomb's payload once gzipped
    gz = draw(st.booleans())
    if not gz:
        return bytes(raw), False
    packed = gzip.compress(bytes(raw), compresslevel=1)
    cut = draw(st.sampled_from(["", "", "", "cut", "tail"]))
    if cut == "cut":
        packed = packed[: draw(st.integers(min_value=0, max_value=len(packed)))]
    elif cut == "tail":
        packed += gzip.compress(b"\0" * 1000)
    return packed, True


@settings(max_examples=300, **SETTINGS)
@given(case=nifti_files(), allow_float=st.booleans(), expect=st.sampled_from([None, SHAPE, (5, 6, 7)]),
       any_order=st.booleans(), max_bytes=st.sampled_from([MAX_BYTES, 7 * 6 * 5 * 8 - 1, 7 * 6 * 5]))
def test_nifti_bytes_mutated_from_valid_files_give_a_bounded_volume_or_image_error(case, allow_float, expect,
                                                                                 any_order, max_bytes):
    content, gz = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("label.nii.gz" if gz else "label.nii")
        path.write_bytes(content)
        volume = read(io.load_nifti, path, max_bytes=max_bytes, allow_float=allow_float, expect_shape=expect,
                      any_axis_order=any_order)
        checked(volume, max_bytes=max_bytes, expect_shape=expect if any_order else None, integers=not allow_float)
        if volume is not None and expect is not None and not any_order:
            assert volume.shape == expect
        label = read(io.load_label_image, path, max_bytes=max_bytes, expect_shape=expect)
        checked(label, max_bytes=max_bytes, expect_shape=expect, integers=True)


@pytest.mark.parametrize("version", [1, 2])
def test_a_nifti_whose_extensions_would_inflate_to_gigabytes_is_refused_before_nibabel_reads_them(tmp_path, version):
    """Found by the second probe: nibabel reads every header extension whole (and keeps them) before any check of ours,
    so a .gz of a megabyte whose vox_offset lies 64 MiB on, with one extension of that size in zeros, made the
    process hold 64 MiB (gigabytes with larger ones). The offset is checked first now."""
    import tracemalloc
    import zlib

    shape = (8, 6, 4)
    header = (nib.Nifti1Header if version == 1 else nib.Nifti2Header)()
    header.set_data_shape(shape)
    header.set_data_dtype(np.uint8)
    start = 352 if version == 1 else 544
    extension = 64 * 1024**2
    header["vox_offset"] = start + extension
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    parts = [compressor.compress(header.binaryblock + b"\x01\0\0\0" + struct.pack("<ii", extension, 0))]
    parts += [compressor.compress(bytes(1 << 20)) for _ in range(extension >> 20)]
    parts += [compressor.compress(bytes(int(np.prod(shape)))), compressor.flush()]
    path = tmp_path / "bomb.nii.gz"
    path.write_bytes(b"".join(parts))
    assert path.stat().st_size < 1024**2
    tracemalloc.start()
    try:
        with pytest.raises(io.ImageError, match="header extensions"):
            io.load_nifti(path, max_bytes=10**6, allow_float=False, expect_shape=shape)
        with pytest.raises(io.ImageError, match="header extensions"):
            io.load_label_image(path, max_bytes=10**6, expect_shape=shape)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024**2, peak


def test_a_nifti_with_small_extensions_still_loads(tmp_path):
    image = nib.Nifti1Image(np.arange(8 * 6 * 4, dtype=np.uint8).reshape(8, 6, 4), np.eye(4))
    image.header.extensions.append(nib.nifti1.Nifti1Extension(6, b"a comment of some length " * 40))
    path = tmp_path / "ext.nii.gz"
    nib.save(image, path)
    assert np.array_equal(io.load_nifti(path).data, np.asarray(image.dataobj))
