"""PLY point clouds: binary little-endian writer (xyz float32, rgb uchar, optional confidence) and a
strict reader for binary (either endianness) and ascii files holding those fields.

The reader validates the header and the byte count before allocating, so truncated or hostile files
fail with :class:`GeometryFormatError` instead of reading garbage or exhausting memory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fantasy_world.errors import GeometryFormatError
from fantasy_world.geometry.pointcloud import PointCloud

log = logging.getLogger(__name__)

_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip
_FORMATS = {"ascii": "", "binary_little_endian": "<", "binary_big_endian": ">"}
_MAX_HEADER = 1 << 16


def write_ply(path: str | Path, cloud: PointCloud, *, binary: bool = True) -> Path:
    """Write ``cloud`` as PLY (binary little-endian unless ``binary=False``); confidence only if present."""
    path = Path(path)
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")]
    if cloud.confidence is not None:
        fields.append(("confidence", "<f4"))
    rows = np.empty(len(cloud), dtype=np.dtype(fields))
    for i, axis in enumerate("xyz"):
        rows[axis] = cloud.points[:, i]
    for i, channel in enumerate(("red", "green", "blue")):
        rows[channel] = cloud.colors[:, i]
    if cloud.confidence is not None:
        rows["confidence"] = cloud.confidence
    names = {"<f4": "float", "u1": "uchar"}
    header = ["ply", f"format {'binary_little_endian' if binary else 'ascii'} 1.0"]
    header += ["comment FantasyWorld Studio", f"element vertex {len(cloud)}"]
    header += [f"property {names[t]} {n}" for n, t in fields]
    header.append("end_header")
    with open(path, "wb") as f:
        f.write(("\n".join(header) + "\n").encode("ascii"))
        if binary:
            f.write(rows.tobytes())
        else:
            fmt = ["%.9g"] * 3 + ["%d"] * 3 + (["%.9g"] if cloud.confidence is not None else [])
            lines = [" ".join(fmt) % tuple(r) for r in rows.tolist()]
            f.write(("\n".join(lines) + ("\n" if lines else "")).encode("ascii"))
    log.debug("wrote %d points to %s", len(cloud), path)
    return path


@dataclass
class _Element:
    name: str
    count: int
    props: list[tuple[str, str]]  # (name, numpy type code without byte order)
    has_list: bool = False


def _parse_header(data: bytes, where: str) -> tuple[str, list[_Element], int]:
    end = data.find(b"end_header", 0, _MAX_HEADER)
    if not data.startswith(b"ply") or end < 0:
        raise GeometryFormatError(
            f"{where}: expected a PLY file starting with 'ply' and an 'end_header' line"
        )
    body_start = data.find(b"\n", end)
    if body_start < 0:
        raise GeometryFormatError(f"{where}: expected a newline after 'end_header'")
    try:
        lines = data[:end].decode("ascii").splitlines()
    except UnicodeDecodeError as exc:
        raise GeometryFormatError(f"{where}: expected an ASCII PLY header") from exc
    if lines[0].strip() != "ply":
        raise GeometryFormatError(f"{where}: expected the first line to be exactly 'ply'")
    fmt: str | None = None
    elements: list[_Element] = []
    for line in lines[1:]:
        tok = line.split()
        if not tok or tok[0] in ("comment", "obj_info"):
            continue
        if tok[0] == "format" and len(tok) == 3 and tok[1] in _FORMATS and tok[2] == "1.0":
            fmt = tok[1]
        elif tok[0] == "element" and len(tok) == 3 and tok[2].isdigit():
            elements.append(_Element(tok[1], int(tok[2]), []))
        elif tok[0] == "property" and elements and len(tok) == 3 and tok[1] in _TYPES:
            elements[-1].props.append((tok[2], _TYPES[tok[1]]))
        elif tok[0] == "property" and elements and len(tok) == 5 and tok[1] == "list":
            elements[-1].has_list = True
        else:
            raise GeometryFormatError(f"{where}: unexpected PLY header line {line.strip()[:60]!r}")
    if fmt is None:
        raise GeometryFormatError(f"{where}: expected a 'format ascii|binary_* 1.0' header line")
    return fmt, elements, body_start + 1


def _vertex_element(elements: list[_Element], where: str) -> tuple[_Element, list[_Element]]:
    for i, el in enumerate(elements):
        if el.name == "vertex":
            before = elements[:i]
            if el.has_list or any(e.has_list for e in before):
                raise GeometryFormatError(f"{where}: list properties before or in 'vertex' are not supported")
            names = [p[0] for p in el.props]
            if len(set(names)) != len(names):
                raise GeometryFormatError(f"{where}: duplicate vertex property names {names}")
            for required in ("x", "y", "z"):
                if required not in names:
                    raise GeometryFormatError(f"{where}: expected vertex property {required!r}")
            return el, before
    raise GeometryFormatError(f"{where}: expected an 'element vertex N' in the header")


def _to_cloud(rows: dict[str, np.ndarray], n: int, where: str) -> PointCloud:
    pts = np.stack([rows[a].astype(np.float32) for a in "xyz"], axis=-1).reshape(n, 3)
    if all(c in rows for c in ("red", "green", "blue")):
        chans = [rows[c] for c in ("red", "green", "blue")]
        if any(c.dtype.kind == "f" for c in chans):
            chans = [np.clip(np.nan_to_num(c.astype(np.float64)) * 255.0 + 0.5, 0, 255) for c in chans]
        colors = np.stack([np.clip(c, 0, 255).astype(np.uint8) for c in chans], axis=-1).reshape(n, 3)
    else:
        colors = np.zeros((n, 3), dtype=np.uint8)
    conf = rows["confidence"].astype(np.float32) if "confidence" in rows else None
    return PointCloud(points=pts, colors=colors, confidence=conf)


def read_ply(path: str | Path) -> PointCloud:
    """Read the vertex xyz (+ rgb, + confidence) of a PLY file; missing colours read as black."""
    path = Path(path)
    where = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise GeometryFormatError(f"{where}: cannot read PLY file ({exc.strerror})") from exc
    fmt, elements, offset = _parse_header(data, where)
    vertex, before = _vertex_element(elements, where)
    order = _FORMATS[fmt]
    if fmt == "ascii":
        return _read_ascii(data[offset:], vertex, before, where)
    for el in before:
        offset += el.count * np.dtype([(f"p{i}", order + t) for i, (_, t) in enumerate(el.props)]).itemsize
    dtype = np.dtype([(name, order + t) for name, t in vertex.props])
    need = vertex.count * dtype.itemsize
    if offset + need > len(data):
        raise GeometryFormatError(
            f"{where}: truncated PLY body: header promises {vertex.count} vertices ({need} bytes), "
            f"file has {max(len(data) - offset, 0)}"
        )
    rows = np.frombuffer(data, dtype=dtype, count=vertex.count, offset=offset)
    return _to_cloud({name: rows[name] for name in dtype.names or ()}, vertex.count, where)


def _read_ascii(body: bytes, vertex: _Element, before: list[_Element], where: str) -> PointCloud:
    try:
        lines = body.decode("ascii").splitlines()
    except UnicodeDecodeError as exc:
        raise GeometryFormatError(f"{where}: expected ASCII text in the PLY body") from exc
    lines = [ln for ln in lines if ln.strip()]
    skip = sum(el.count for el in before)
    if len(lines) < skip + vertex.count:
        raise GeometryFormatError(
            f"{where}: truncated PLY body: expected {skip + vertex.count} lines, got {len(lines)}"
        )
    k = len(vertex.props)
    table = np.empty((vertex.count, k), dtype=np.float64)
    for i, line in enumerate(lines[skip : skip + vertex.count]):
        tok = line.split()
        if len(tok) != k:
            raise GeometryFormatError(f"{where}: vertex line {i} has {len(tok)} values, expected {k}")
        try:
            table[i] = [float(t) for t in tok]
        except ValueError as exc:
            raise GeometryFormatError(f"{where}: vertex line {i} has a non-numeric value") from exc
    rows = {}
    for j, (name, t) in enumerate(vertex.props):
        col = table[:, j]
        if np.dtype(t).kind in "iu":
            info = np.iinfo(np.dtype(t))
            if not np.all(np.isfinite(col)) or np.any((col < info.min) | (col > info.max)):
                raise GeometryFormatError(f"{where}: property {name!r} has values outside its integer type")
        rows[name] = col.astype(t)
    return _to_cloud(rows, vertex.count, where)
