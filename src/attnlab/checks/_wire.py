"""The narrow channel between the grader and a submission's process: framed messages of
plain data (JSON header + NumPy arrays in an ``.npz`` blob, never pickles).

A frame is ``len(header) (4 bytes) | header JSON | len(blob) (8 bytes) | blob``. Values are
encoded as a tree of JSON scalars, ``{"nd": k}`` (the k-th array of the blob),
``{"seq": [...], "tuple": bool}`` and ``{"opaque": type name}`` for anything else. Decoding
reads arrays with ``allow_pickle=False`` and enforces size limits, so a submission can send
wrong numbers but never code, and never more than the limits.
"""

from __future__ import annotations

import io
import json
import os
import select
import struct
import time
from typing import Any

import numpy as np

__all__ = ["Opaque", "ProtocolError", "ChannelTimeout", "encode", "decode", "write_frame",
           "read_frame", "MAX_HEADER", "MAX_BLOB"]

MAX_HEADER = 1 << 20  # bytes of JSON per message
MAX_BLOB = 64 << 20  # bytes of arrays per message
_MAX_DEPTH, _MAX_ITEMS, _MAX_STR = 6, 10_000, 2000


class ProtocolError(Exception):
    """A malformed or oversized message (the submission's process broke the channel)."""


class ChannelTimeout(Exception):
    """No complete message before the deadline."""


class Opaque:
    """Stands for a value the channel does not carry (a dict, a model, a function...)."""

    def __init__(self, type_name: str) -> None:
        self.type_name = str(type_name)[:80]

    def __repr__(self) -> str:
        return f"<{self.type_name}>"


# ----------------------------------------------------------------------------- values
def encode(value: Any) -> tuple[Any, list[np.ndarray]]:
    """``(tree, arrays)`` for ``value``: numbers, strings, arrays (torch tensors become
    arrays), lists and tuples of those; anything else becomes ``{"opaque": type name}``."""
    arrays: list[np.ndarray] = []

    def enc(v: Any, depth: int) -> Any:
        if v is None or isinstance(v, bool | int | float):
            if isinstance(v, int) and not isinstance(v, bool) and abs(v) > 2**63:
                return float(v)
            return v
        if isinstance(v, str):
            return {"str": v[:_MAX_STR]}
        if isinstance(v, np.generic) and v.dtype.kind in "biuf":
            return v.item()
        if type(v).__module__.startswith("torch") and hasattr(v, "detach"):
            try:
                v = v.detach().cpu().numpy()
            except Exception:
                return {"opaque": type(v).__name__}
        if isinstance(v, np.ndarray):
            if v.dtype.kind not in "biuf":
                return {"opaque": f"ndarray of {v.dtype}"}
            arrays.append(np.ascontiguousarray(v))
            return {"nd": len(arrays) - 1}
        if isinstance(v, list | tuple) and depth < _MAX_DEPTH and len(v) <= _MAX_ITEMS:
            return {"seq": [enc(x, depth + 1) for x in v], "tuple": isinstance(v, tuple)}
        return {"opaque": type(v).__name__}

    return enc(value, 0), arrays


def decode(tree: Any, arrays: list[np.ndarray]) -> Any:
    """Inverse of :func:`encode`; :class:`ProtocolError` on anything malformed."""

    def dec(t: Any, depth: int) -> Any:
        if depth > _MAX_DEPTH + 1:
            raise ProtocolError("nested too deeply")
        if t is None or isinstance(t, bool | int | float):
            return t
        if isinstance(t, dict) and len(t) <= 2:
            if "nd" in t and isinstance(t["nd"], int) and 0 <= t["nd"] < len(arrays):
                return arrays[t["nd"]]
            if isinstance(t.get("str"), str):
                return t["str"]
            if isinstance(t.get("opaque"), str):
                return Opaque(t["opaque"])
            if isinstance(t.get("seq"), list) and len(t["seq"]) <= _MAX_ITEMS:
                items = [dec(x, depth + 1) for x in t["seq"]]
                return tuple(items) if t.get("tuple") else items
        raise ProtocolError("malformed value")

    return dec(tree, 0)


# ----------------------------------------------------------------------------- frames
def _pack_arrays(arrays: list[np.ndarray]) -> bytes:
    if not arrays:
        return b""
    buf = io.BytesIO()
    np.savez(buf, *arrays)
    return buf.getvalue()


def _unpack_arrays(blob: bytes) -> list[np.ndarray]:
    if not blob:
        return []
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            return [z[f"arr_{i}"] for i in range(len(z.files))]
    except Exception as exc:
        raise ProtocolError(f"unreadable arrays ({type(exc).__name__})") from None


def write_frame(fd: int, header: dict, arrays: list[np.ndarray] | None = None) -> None:
    """Write one message to the file descriptor ``fd`` (blocking)."""
    head = json.dumps(header).encode()
    blob = _pack_arrays(arrays or [])
    data = struct.pack(">I", len(head)) + head + struct.pack(">Q", len(blob)) + blob
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes:
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChannelTimeout()
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                raise ChannelTimeout()
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise EOFError("the other end closed the channel")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_frame(fd: int, deadline: float | None = None, max_blob: int = MAX_BLOB
               ) -> tuple[dict, list[np.ndarray]]:
    """Read one message: ``(header dict, arrays)``. Raises :class:`ChannelTimeout` after
    ``deadline`` (a ``time.monotonic()`` value), EOFError when closed, :class:`ProtocolError`
    on malformed or oversized data."""
    (n,) = struct.unpack(">I", _read_exact(fd, 4, deadline))
    if n > MAX_HEADER:
        raise ProtocolError(f"header of {n} bytes")
    try:
        header = json.loads(_read_exact(fd, n, deadline))
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError("header is not JSON") from None
    if not isinstance(header, dict):
        raise ProtocolError("header is not an object")
    (m,) = struct.unpack(">Q", _read_exact(fd, 8, deadline))
    if m > max_blob:
        raise ProtocolError(f"{m} bytes of arrays (limit {max_blob})")
    return header, _unpack_arrays(_read_exact(fd, m, deadline))
