"""ml_engine.io.nrrd: the pure-Python NRRD reader gives what the old SimpleITK route gave for the files 3D Slicer and
ITK write, and refuses, from its header and under its caps, every NRRD the C++ reader could be abused with (#23)."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import SimpleITK as sitk

from ml_engine import io
from ml_engine.io import nrrd
from tests.conftest import REPO

LPS = np.diag([-1.0, -1.0, 1.0])
# an oblique RAS+ grid: axes swapped and flipped, odd spacings, an origin away from 0
AFFINE = np.array([[0.0, -0.7, 0.0, 120.5], [0.8, 0.0, 0.0, -95.25], [0.0, 0.0, 2.5, -300.0], [0, 0, 0, 1]])
SHAPE = (7, 6, 5)
BIG = 1 << 30  # max_bytes where the limit is not what a test is about


def labels(dtype=np.uint8, shape=SHAPE, seed=0) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.random.default_rng(seed).integers(max(info.min, -300), min(info.max, 300), shape,
                                                endpoint=True).astype(dtype)


def itk_write(path, data: np.ndarray, affine: np.ndarray = AFFINE, *, compress: bool = True):
    """data (x, y, z) on the RAS+ affine, written by ITK (as 3D Slicer writes it): LPS."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(2, 1, 0)))
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    image.SetSpacing(spacing.tolist())
    image.SetDirection((LPS @ affine[:3, :3] / spacing).ravel().tolist())
    image.SetOrigin((LPS @ affine[:3, 3]).tolist())
    sitk.WriteImage(image, str(path), useCompression=compress)
    return path


def old_route(path) -> io.Volume:
    """What load_label_image returned before #23: SimpleITK's NRRD reader (for our own, benign test files only)."""
    return io.sitk_to_volume(sitk.ReadImage(str(path), imageIO="NrrdImageIO"), path)


FIELDS = {  # a valid label map's header, as ITK writes it (LPS; AFFINE's directions and origin in LPS)
    "type": "unsigned char",
    "dimension": "3",
    "space": "left-posterior-superior",
    "sizes": "7 6 5",
    "space directions": "(0,-0.80000000000000004,0) (0.69999999999999996,0,0) (0,0,2.5)",
    "kinds": "domain domain domain",
    "endian": "little",
    "encoding": "raw",
    "space origin": "(-120.5,95.25,-300)",
}


def header(extra: tuple[str, ...] = (), **fields: str | None) -> list[str]:
    """FIELDS with some replaced (name_with_underscores=value) or dropped (=None), then the extra lines."""
    merged = dict(FIELDS)
    for name, value in fields.items():
        merged[name.replace("_", " ")] = value
    return [f"{k}: {v}" for k, v in merged.items() if v is not None] + list(extra)


def write(path, lines: list[str], data: bytes = b"", *, magic: bytes = b"NRRD0004", end: bytes = b"\n\n"):
    path.write_bytes(magic + b"\n" + "\n".join(lines).encode() + end + data)
    return path


def refused(path, **kwargs) -> str:
    kwargs.setdefault("max_bytes", BIG)
    with pytest.raises(io.ImageError) as info:
        nrrd.load_nrrd(path, **kwargs)
    assert str(info.value).startswith(f"{path}: ")  # the message names the file
    return info.value.problem


# --- what ITK and 3D Slicer write reads as the old SimpleITK route read it ---

@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.uint16, np.int32, np.uint32, np.int64])
@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "raw"])
def test_itk_written_label_maps_read_as_simpleitk_read_them(tmp_path, dtype, compress):
    data = labels(dtype)
    path = itk_write(tmp_path / "label.nrrd", data, compress=compress)
    volume = nrrd.load_nrrd(path, max_bytes=BIG)
    before = old_route(path)
    assert volume.data.dtype == before.data.dtype == dtype and volume.data.dtype.isnative
    assert np.array_equal(volume.data, data) and np.array_equal(volume.data, before.data)
    assert np.allclose(volume.affine, before.affine, atol=1e-9, rtol=0)
    assert np.allclose(volume.affine, AFFINE, atol=1e-9, rtol=0)
    assert volume.data.flags.writeable


@pytest.mark.parametrize("space, flip", [("right-anterior-superior", (1, 1, 1)), ("RAS", (1, 1, 1)),
                                         ("left-anterior-superior", (-1, 1, 1)), ("LAS", (-1, 1, 1)),
                                         ("left-posterior-superior", (-1, -1, 1)), ("lps", (-1, -1, 1))])
@pytest.mark.parametrize("encoding", ["gzip", "gz", "raw"])
def test_every_anatomical_space_gives_the_same_ras_affine_as_simpleitk(tmp_path, space, flip, encoding):
    data = labels(np.uint8)
    in_space = np.diag(flip) @ AFFINE[:3]  # RAS+ -> the named space (each flip is its own inverse)
    directions = " ".join(f"({','.join(repr(float(v)) for v in in_space[:, i])})" for i in range(3))
    origin = f"({','.join(repr(float(v)) for v in in_space[:, 3])})"
    raw = data.tobytes(order="F")
    path = write(tmp_path / "l.nrrd", header(space=space, space_directions=directions, space_origin=origin,
                                             encoding=encoding),
                 gzip.compress(raw) if encoding != "raw" else raw)
    volume = nrrd.load_nrrd(path, max_bytes=BIG)
    assert np.array_equal(volume.data, data)
    assert np.allclose(volume.affine, AFFINE, atol=1e-12, rtol=0)
    assert np.allclose(volume.affine, old_route(path).affine, atol=1e-9, rtol=0)


@pytest.mark.parametrize("dtype, spelling", [(np.int16, "short"), (np.uint16, "unsigned short int"),
                                             (np.int32, "int32_t"), (np.uint32, "uint"),
                                             (np.int64, "signed long long int"), (np.uint64, "ulonglong")])
def test_big_endian_data_come_back_native(tmp_path, dtype, spelling):
    data = labels(dtype)
    path = write(tmp_path / "big.nrrd", header(type=spelling, endian="big", encoding="gzip"),
                 gzip.compress(data.astype(np.dtype(dtype).newbyteorder(">")).tobytes(order="F")))
    volume = nrrd.load_nrrd(path, max_bytes=BIG)
    assert volume.data.dtype == np.dtype(dtype) and volume.data.dtype.isnative
    assert np.array_equal(volume.data, data) and np.array_equal(volume.data, old_route(path).data)


def test_every_integer_type_spelling_of_the_spec_is_read(tmp_path):
    data = labels(np.uint8) % 100  # a value of every type
    for spelling, code in nrrd._TYPES.items():
        dtype = np.dtype("<" + code)
        path = write(tmp_path / "t.nrrd", header(type=spelling.upper() if "_" in spelling else spelling),
                     data.astype(dtype).tobytes(order="F"))
        volume = nrrd.load_nrrd(path, max_bytes=BIG)
        assert volume.data.dtype == dtype.newbyteorder("=") and np.array_equal(volume.data, data), spelling
    assert len(set(nrrd._TYPES.values())) == 8 and len(nrrd._TYPES) == 38


@pytest.mark.parametrize("kind", ["list", "vector", "???", None])
def test_a_single_layer_seg_nrrd_in_4d_reads_as_3d(tmp_path, kind):
    """3D Slicer saves a segmentation of one layer as 4D: a first, non-space axis of size 1."""
    data = labels(np.uint8)
    kinds = None if kind is None else f"{kind} domain domain domain"
    path = write(tmp_path / "seg.seg.nrrd",
                 header(("Segment0_ID:=liver", "Segment0_LabelValue:=5", "Segment0_Layer:=0"), dimension="4",
                        sizes="1 7 6 5", kinds=kinds, encoding="gzip",
                        space_directions="none " + FIELDS["space directions"],
                        measurement_frame="(1,0,0) (0,1,0) (0,0,1)"),
                 gzip.compress(data.tobytes(order="F")))
    volume = io.load_label_image(path, max_bytes=BIG, expect_shape=SHAPE)
    assert volume.shape == SHAPE and np.array_equal(volume.data, data)
    assert np.allclose(volume.affine, AFFINE, atol=1e-9, rtol=0)


def test_overlapping_segments_are_refused_as_before(tmp_path):
    """Two layers: ITK writes a 2-component vector image as a 4D NRRD."""
    image = sitk.GetImageFromArray(np.zeros((5, 6, 7, 2), np.uint8), isVector=True)
    sitk.WriteImage(image, str(tmp_path / "two.seg.nrrd"), useCompression=True)
    assert refused(tmp_path / "two.seg.nrrd") == ("expected one 3D label map, found size (7, 6, 5) with 2 layer(s) "
                                                  "(overlapping segments: save a label map without overlaps)")


def test_crlf_lines_and_harmless_fields_are_accepted(tmp_path):
    data = labels(np.uint8)
    lines = header(("# a comment", "content: liver: and more", "centerings: cell cell cell",
                    "labels: \"x\" \"y\" \"z\"", "units: mm mm mm", "space units: \"mm\" \"mm\" \"mm\"",
                    "thicknesses: nan nan 2.5",
                    "min: 0", "max: 300", "oldmin: 0", "old max: 1", "sample units: label", "space dimension: 3",
                    "measurement frame: (1,0,0) (0,1,0) (0,0,1)", "key with spaces:=value: with a colon",
                    "x" * 1000 + ":=long key", "#" + "c" * 1000))
    path = tmp_path / "crlf.nrrd"
    path.write_bytes(b"NRRD0005\r\n" + "\r\n".join(lines).encode() + b"\r\n\r\n" + data.tobytes(order="F"))
    volume = nrrd.load_nrrd(path, max_bytes=BIG)
    assert np.array_equal(volume.data, data) and np.allclose(volume.affine, AFFINE, atol=1e-9)


def test_load_label_image_reads_nrrd_without_simpleitk(tmp_path):
    """In a fresh interpreter, reading .nrrd and .seg.nrrd labels never imports SimpleITK."""
    data = labels(np.uint8)
    for name in ("a.nrrd", "b.seg.nrrd"):
        write(tmp_path / name, header(encoding="gzip"), gzip.compress(data.tobytes(order="F")))
    code = ("import sys; from ml_engine import io\n"
            f"for name in ('a.nrrd', 'b.seg.nrrd', 'A.NRRD'):\n"
            f"    try: io.load_label_image({str(tmp_path)!r} + '/' + name, max_bytes=1 << 20, expect_shape=(5, 6, 7))\n"
            "    except io.ImageError as exc: assert 'no such file' in str(exc) and name == 'A.NRRD'\n"
            "assert 'SimpleITK' not in sys.modules, 'SimpleITK was imported'\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_labels_move_out_of_sitk_images_keep_their_names():
    from ml_engine.io import labels_io, sitk_images

    assert io.load_label_image is labels_io.load_label_image and io.label_suffix("x.SEG.NRRD") == ".seg.nrrd"
    assert io.LABEL_SUFFIXES == (".nii.gz", ".nii", ".seg.nrrd", ".nrrd")
    assert not hasattr(sitk_images, "load_label_image")


# --- refused from the header, each naming the field ---

REFUSALS = [
    # detached data and skips: the data must follow the header in this very file
    (dict(extra=("data file: /etc/passwd",)), "NRRD field 'data file': detached data files are not accepted"),
    (dict(extra=("datafile: LIST", "/etc/passwd", "/etc/hostname")), "NRRD field 'datafile': detached"),
    (dict(extra=("data file: ./other.raw 0 1 1",)), "NRRD field 'data file'"),
    (dict(extra=("byte skip: -1",)), "NRRD field 'byte skip': skipping bytes"),
    (dict(extra=("byteskip: 10",)), "NRRD field 'byteskip'"),
    (dict(extra=("line skip: 3",)), "NRRD field 'line skip'"),
    (dict(extra=("LineSkip: 3",)), "NRRD field 'lineskip'"),
    # encodings
    *[(dict(encoding=e), f"NRRD field 'encoding': {e} is not accepted") for e in nrrd._REFUSED_ENCODINGS],
    (dict(encoding="zstd"), "NRRD field 'encoding': unknown encoding 'zstd'"),
    # types
    (dict(type="float"), "NRRD field 'type': expected integer voxels, found float"),
    (dict(type="double"), "NRRD field 'type': expected integer voxels, found double"),
    (dict(type="block", extra=("block size: 4",)), "NRRD field 'block size'"),
    (dict(type="block"), "NRRD field 'type': expected integer voxels, found block"),
    (dict(type="char"), "NRRD field 'type': unknown type 'char'"),
    (dict(type=None), "NRRD field 'type' is missing"),
    # dimensions and layers
    (dict(dimension="2", sizes="7 6"), "NRRD field 'dimension': expected one 3D label map, found dimension 2"),
    (dict(dimension="5", sizes="1 1 7 6 5"), "NRRD field 'dimension': expected one 3D label map, found dimension 5"),
    (dict(dimension="4", sizes="1 7 6 5", kinds="domain domain domain domain",
          space_directions="none (1,0,0) (0,1,0) (0,0,1)"), "NRRD field 'dimension': expected one 3D label map"),
    (dict(dimension="4", sizes="1 7 6 5", kinds=None,
          space_directions="(1,0,0) (1,0,0) (0,1,0) (0,0,1)"), "first axis is a space axis"),
    (dict(dimension="4", sizes="3 7 6 5", kinds="list domain domain domain",
          space_directions="none (1,0,0) (0,1,0) (0,0,1)"),
     "expected one 3D label map, found size (7, 6, 5) with 3 layer(s) (overlapping segments"),
    (dict(dimension="4", sizes="1 7 6 5", kinds="bogus domain domain domain",
          space_directions="none (1,0,0) (0,1,0) (0,0,1)"), "NRRD field 'kinds': unknown kind 'bogus'"),
    (dict(kinds="vector domain domain"), "NRRD field 'kinds': 'vector' for a space axis"),
    (dict(kinds="domain domain"), "NRRD field 'kinds': 2 kinds for dimension 3"),
    (dict(dimension="3.0"), "NRRD field 'dimension': '3.0' is not an integer"),
    (dict(dimension=None), "NRRD field 'dimension' is missing"),
    # sizes
    (dict(sizes="7 6"), "NRRD field 'sizes': 2 sizes for dimension 3"),
    (dict(sizes="7 6 5 4"), "NRRD field 'sizes': 4 sizes for dimension 3"),
    (dict(sizes="7 -6 5"), "NRRD field 'sizes': '-6' is not an integer"),
    (dict(sizes="7 0 5"), "NRRD field 'sizes': a size of 0"),
    (dict(sizes="7 6 1"), "NRRD field 'sizes': expected a 3D volume, found a single slice of shape (7, 6, 1)"),
    (dict(sizes="7 6 1234567890123"), "NRRD field 'sizes': '1234567890123' is not an integer of at most 12 digits"),
    (dict(sizes="7 6 " + "9" * 400), "is not an integer of at most 12 digits"),
    (dict(sizes="7 6 ５"), "NRRD header line 5 holds a byte that is not printable ASCII"),
    (dict(sizes=None), "NRRD field 'sizes' is missing"),
    # endian
    (dict(type="short", endian=None), "NRRD field 'endian' is missing (needed for short)"),
    (dict(endian="middle"), "NRRD field 'endian': expected little or big"),
    # space
    (dict(space=None), "NRRD field 'space' is missing"),
    (dict(space=None, extra=("space dimension: 3",)), "NRRD field 'space' is missing"),
    (dict(space="scanner-xyz"), "NRRD field 'space': 'scanner-xyz' is not accepted"),
    (dict(space="3D-right-handed"), "NRRD field 'space': '3d-right-handed' is not accepted"),
    (dict(space="right-anterior-superior-time"), "NRRD field 'space'"),
    (dict(extra=("space dimension: 2",)), "NRRD field 'space dimension': 2 is not the 3"),
    (dict(space_directions=None), "NRRD field 'space directions' is missing"),
    (dict(space_directions="(nan,0,0) (0,1,0) (0,0,1)"), "NRRD field 'space directions': 'nan' is not a finite"),
    (dict(space_directions="(inf,0,0) (0,1,0) (0,0,1)"), "NRRD field 'space directions': 'inf' is not a finite"),
    (dict(space_directions="(1e999,0,0) (0,1,0) (0,0,1)"), "NRRD field 'space directions': '1e999' is not a finite"),
    (dict(space_directions="(1e200,0,0) (0,1e200,0) (0,0,1e200)"),
     "NRRD field 'space directions': singular or not finite"),
    (dict(space_directions="(1,0,0) (2,0,0) (0,0,1)"), "NRRD field 'space directions': singular"),
    (dict(space_directions="(1e-4,0,0) (0,1e-4,0) (0,0,1e-4)"), "NRRD field 'space directions': singular"),
    (dict(space_directions="(1,0,0) (0,1,0)"), "NRRD field 'space directions': fewer than the 3"),
    (dict(space_directions="(1,0,0) (0,1,0) (0,0,1) (1,1,1)"), "NRRD field 'space directions': more than the 3"),
    (dict(space_directions="(1,0) (0,1,0) (0,0,1)"), "NRRD field 'space directions': '(1,0)' is not a 3-vector"),
    (dict(space_directions="(1,0,0) none (0,0,1)"), "NRRD field 'space directions': 'none' for a space axis"),
    (dict(space_directions="(1_0,0,0) (0,1,0) (0,0,1)"), "NRRD field 'space directions': '1_0' is not a finite"),
    (dict(space_directions="[1,0,0] (0,1,0) (0,0,1)"), "NRRD field 'space directions': expected 'none' or"),
    (dict(space_origin="(nan,0,0)"), "NRRD field 'space origin': 'nan' is not a finite number"),
    (dict(space_origin="(0,0,0) (0,0,0)"), "NRRD field 'space origin': more than the 1"),
    (dict(space_origin="none"), "NRRD field 'space origin': 'none'"),
    # fields: unknown, geometry from elsewhere, duplicates
    (dict(extra=("spacings: 1 1 1",)), "NRRD field 'spacings': not accepted"),
    (dict(extra=("axis mins: 0 0 0",)), "NRRD field 'axis mins'"),
    (dict(extra=("number: 210",)), "NRRD field 'number'"),
    (dict(extra=("colour: red",)), "NRRD field 'colour' is not accepted in a label map"),
    (dict(extra=("type: unsigned char",)), "NRRD field 'type' is given twice"),
    (dict(extra=("centers: cell cell cell", "centerings: node node node")), "NRRD field 'centers' is given twice"),
    (dict(extra=("Space: RAS",)), "NRRD field 'space' is given twice"),
    # lines of no form, bytes that are not text
    (dict(extra=("just words",)), "NRRD header line 11 is neither a comment, a 'field: value' nor a 'key:=value'"),
    (dict(extra=("type:uchar",)), "neither a comment"),
    (dict(extra=(" ",)), "neither a comment"),
    (dict(extra=("content: caf\xe9",)), "NRRD header line 11 holds a byte that is not printable ASCII"),
    (dict(extra=("content: a\x00b",)), "holds a byte that is not printable ASCII (0x00)"),
    (dict(extra=("content: a\x1bb",)), "holds a byte that is not printable ASCII"),
    (dict(extra=("content: " + "x" * 1100,)), "NRRD header line 11 is longer than 1024 bytes"),
]


@pytest.mark.parametrize("change, message", REFUSALS, ids=[m[:40] for _, m in REFUSALS])
def test_a_header_outside_what_we_accept_is_refused_naming_the_field(tmp_path, change, message):
    change = dict(change)
    path = write(tmp_path / "bad.nrrd", header(change.pop("extra", ()), **change), labels().tobytes(order="F"))
    assert message in refused(path)


@pytest.mark.parametrize("content, message", [
    (b"", "not a NRRD file (no NRRD000N magic)"),
    (b"NRRD", "not a NRRD file"),
    (b"NRRD0006\ntype: uchar\n\n", "not a NRRD file"),
    (b"NRRD0004 \n\n", "not a NRRD file"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "not a NRRD file"),
    (b"NRRD0004\n", "the NRRD header has no blank line ending it"),
    (b"NRRD0004\ntype: uchar\ndimension: 3\n", "no blank line"),
    (b"NRRD0004\ntype: uchar\ndimension: 3", "no blank line"),
    (b"NRRD0004\n" + b"#" * 2000, "NRRD header line 2 is longer than 1024 bytes"),
    (b"NRRD0004" + b" " * 2000 + b"\n\n", "NRRD header line 1 is longer than 1024 bytes"),
    (b"NRRD0004\n" + b"# comment of a hundred bytes or so, repeated past the header's cap " * 2 + b"\n" + (
        b"#" + b"c" * 99 + b"\n") * 1000, "NRRD header longer than 65536 bytes"),
    (b"NRRD0004\n" + b"k:=v\n" * 2000 + b"\n", "NRRD header of more than 1024 lines"),
])
def test_a_file_that_is_not_a_bounded_nrrd_header_is_refused(tmp_path, content, message):
    path = tmp_path / "x.nrrd"
    path.write_bytes(content)
    assert message in refused(path)


class CountingReader:
    """A binary file that counts the bytes read from it."""

    def __init__(self, handle):
        self.handle, self.read_bytes, self.calls = handle, 0, 0

    def read(self, n: int = -1) -> bytes:
        assert 0 < n <= nrrd.HEADER_CHUNK  # bounded reads only, never to the end of the file
        block = self.handle.read(n)
        self.read_bytes += len(block)
        self.calls += 1
        return block


@pytest.mark.parametrize("line", [b"k:=v\n", b"Segment0_Extent:=0 511 0 511 0 299\n", b"#\n"])
def test_two_million_lines_are_refused_by_the_cap_without_being_read(tmp_path, line):
    path = tmp_path / "many.nrrd"
    path.write_bytes(b"NRRD0004\n" + line * 2_000_000 + b"\n")
    assert path.stat().st_size > 2_000_000
    assert "NRRD header of more than 1024 lines" in refused(path) or "longer than 65536 bytes" in refused(path)
    with open(path, "rb") as raw:
        counting = CountingReader(raw)
        with pytest.raises(io.ImageError, match="more than 1024 lines|longer than 65536 bytes"):
            nrrd.read_header(counting, path)
    assert counting.read_bytes <= nrrd.MAX_HEADER_BYTES


def test_a_long_header_is_read_in_bounded_chunks(tmp_path):
    path = write(tmp_path / "ok.nrrd", header(tuple(f"Segment{i}_Name:={'n' * 40}" for i in range(900))),
                 labels().tobytes(order="F"))
    with open(path, "rb") as raw:
        counting = CountingReader(raw)
        lines, offset = nrrd.read_header(counting, path)
    assert len(lines) == 909 and offset == path.stat().st_size - 210
    assert counting.read_bytes <= nrrd.MAX_HEADER_BYTES and counting.calls >= counting.read_bytes // nrrd.HEADER_CHUNK
    assert nrrd.load_nrrd(path, max_bytes=BIG).shape == SHAPE


@pytest.mark.parametrize("length, accepted", [(1000, True), (1024, True), (1025, False)])
def test_a_thousand_character_line_is_within_the_cap_and_harmless(tmp_path, length, accepted):
    """ITK's reader crashes on a 1,000-character header line; ours reads it as text under its 1 KiB line cap."""
    data = labels()
    for line in ("content: " + "x" * (length - 9), "k:=" + "v" * (length - 3), "#" * length):
        assert len(line) == length
        path = write(tmp_path / "long.nrrd", header((line,)), data.tobytes(order="F"))
        if accepted:
            assert np.array_equal(nrrd.load_nrrd(path, max_bytes=BIG).data, data)
        else:
            assert "NRRD header line 11 is longer than 1024 bytes" in refused(path)
    junk = write(tmp_path / "junk.nrrd", header(space_directions="(" + "1," * 499 + "1)"), data.tobytes(order="F"))
    assert "NRRD field 'space directions': '(1,1,1,1," in refused(junk)


# --- detached files, FIFOs, devices: nothing but the uploaded file itself is ever opened ---

def test_a_detached_data_file_naming_a_real_file_is_refused(tmp_path):
    secret = tmp_path / "secret.raw"
    secret.write_bytes(labels().tobytes(order="F"))  # exactly the voxels the header promises
    for lines in (header((f"data file: {secret}",)), header(("data file: LIST", str(secret))),
                  header((f"data file: {tmp_path}/secret.%s 0 0 1".replace("%s", "raw"),))):
        path = write(tmp_path / "detached.nrrd", lines)
        assert "NRRD field 'data file': detached data files are not accepted" in refused(path)


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "label.nrrd"
    os.mkfifo(fifo)
    outcome: list[BaseException | object] = []

    def read():
        try:
            io.load_label_image(fifo, max_bytes=BIG)
        except BaseException as exc:  # noqa: BLE001  (handed to the test's thread)
            outcome.append(exc)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(60)  # opened O_NONBLOCK: returns at once; a blocking open would wait here for a writer forever
    assert not thread.is_alive(), "reading a FIFO blocked"
    assert isinstance(outcome[0], io.ImageError) and "not a regular file" in outcome[0].problem
    # a detached data file naming the FIFO is refused by its field, before anything is opened
    path = write(tmp_path / "to_fifo.nrrd", header((f"data file: {fifo}",)))
    assert "NRRD field 'data file'" in refused(path)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_devices_folders_and_links_to_them_are_refused(tmp_path):
    assert "not a regular file" in refused("/dev/zero")
    link = tmp_path / "zero.seg.nrrd"
    link.symlink_to("/dev/zero")
    assert "not a regular file" in refused(link)  # checked on the opened descriptor, after the link
    folder = tmp_path / "dir.nrrd"
    folder.mkdir()
    assert "not a regular file" in refused(folder)
    assert "no such file" in refused(tmp_path / "missing.nrrd")


# --- the data: as much as the header promises, no more, no less; limits before a byte is read ---

def test_limits_and_the_ct_shape_are_checked_before_any_data_byte(tmp_path):
    no_data = write(tmp_path / "promise.nrrd", header(encoding="gzip"))  # the header only: reading would fail
    assert refused(no_data, max_bytes=7 * 6 * 5 * 8 - 1) == (
        f"volume of size {SHAPE} exceeds the limit of {7 * 6 * 5 * 8 - 1} bytes")
    assert refused(no_data, expect_shape=(7, 6, 4)) == "shape (7, 6, 5) differs from the CT's (7, 6, 4)"
    assert "truncated or corrupt data" in refused(no_data, max_bytes=7 * 6 * 5 * 8, expect_shape=(5, 7, 6))
    huge = write(tmp_path / "huge.nrrd", header(sizes="999999999999 999999999999 999999999999"))
    assert "exceeds the limit of 1073741824 bytes" in refused(huge)
    assert "is not an integer of at most 12 digits" in refused(
        write(tmp_path / "overflow.nrrd", header(sizes=f"{2**64} {2**64} 2")))
    assert "exceeds the limit" in refused(write(tmp_path / "wrap.nrrd", header(sizes=f"{2**32} {2**32} 2")))


@pytest.mark.parametrize("encoding", ["raw", "gzip"])
def test_truncated_and_trailing_data_are_refused(tmp_path, encoding):
    data = labels(np.int16)
    raw = data.tobytes(order="F")
    pack = gzip.compress if encoding == "gzip" else (lambda b: b)
    lines = header(type="int16", encoding=encoding)
    short = write(tmp_path / "short.nrrd", lines, pack(raw[:-1]))
    assert "truncated or corrupt data" in refused(short)
    cut = write(tmp_path / "cut.nrrd", lines, pack(raw)[:-5])
    assert "truncated or corrupt data" in refused(cut)
    long = write(tmp_path / "long.nrrd", lines, pack(raw + b"\0"))
    assert f"trailing data after the {len(raw)} bytes of voxels" in refused(long)
    tail = write(tmp_path / "tail.nrrd", lines, pack(raw) + gzip.compress(b"\0" * 100))
    assert "trailing data" in refused(tail) or "truncated or corrupt" in refused(tail)
    assert np.array_equal(nrrd.load_nrrd(write(tmp_path / "ok.nrrd", lines, pack(raw)), max_bytes=BIG).data, data)


def test_a_gzip_bomb_is_inflated_no_further_than_the_header_promises(tmp_path, monkeypatch):
    bomb = gzip.compress(b"\0" * (64 << 20))  # 64 MiB of zeros in 64 KiB
    assert len(bomb) < (1 << 17)
    small = write(tmp_path / "small.nrrd", header(sizes="2 2 2", encoding="gzip"), bomb)
    inflated = []
    real = nrrd.read_voxel_bytes

    def spy(*args, **kwargs):
        inflated.append(kwargs["nbytes"])
        return real(*args, **kwargs)

    monkeypatch.setattr(nrrd, "read_voxel_bytes", spy)
    assert "trailing data after the 8 bytes of voxels" in refused(small)
    assert inflated == [8]
    # one promising a huge shape is refused by its size before the bomb is touched
    big = write(tmp_path / "big.nrrd", header(sizes="4096 4096 4096", encoding="gzip"), bomb)
    assert "exceeds the limit" in refused(big, max_bytes=512 * 512 * 300 * 8)
    assert inflated == [8]


def test_gzip_through_the_standard_library_fallback_gives_the_same(tmp_path, monkeypatch):
    from ml_engine.io import gz

    data = labels(np.uint16)
    path = itk_write(tmp_path / "l.nrrd", data)
    monkeypatch.setattr(gz, "_gzip", gzip)
    assert np.array_equal(nrrd.load_nrrd(path, max_bytes=BIG).data, data)
