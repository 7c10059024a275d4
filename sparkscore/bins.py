"""The histogram grid of numeric profiles: a float's bin, from its own bits, and a bin's edges.

A finite value's bin is the top 15 bits of its float64: its sign, its exponent and the first
three bits of its mantissa, so `|v|` in `[2**e * (8 + j) / 8, 2**e * (9 + j) / 8)` for `j` in
0..7. Every bin is at most 12.5% wide relative to its values and its edges are exact floats.
The grid is fixed once for all data, not per run: two tasks, two runs, or a run and its
reference a year later put a value in the same bin, with no pass over the data first and
nothing decided on the driver. Bins decided from the first file (or the plan's metadata)
would instead differ between runs, and a comparison would have to re-bin one histogram into
the other's edges, inexactly; a grid fixed by the number's own bits needs neither, and finding
a bin is one shift of the value's bits. Only the bins holding values are kept: a column
spanning six orders of magnitude holds about 160 of them.

A bin's key is an int ordered as its values are (so drift can group neighbouring bins): the
15 bits as a signed integer, with a negative value's turned around, since the bits of
negative floats order backwards. In JSON a bin is written as its edges (bin_edges) and read
back to its key (bin_key).
"""

from __future__ import annotations

import functools
import math
import struct
import sys

import numpy as np

__all__ = ["bin_edges", "bin_key", "count_bins", "count_bins_columns", "count_grouped"]

_SHIFT = 49  # float64 bits below the sign, the exponent and the first three mantissa bits
_NEGATIVE = -16385  # raw keys of negative values (-16384..-1) map to -1..-16384, reversed
_LARGEST = float(np.finfo(np.float64).max)  # the edge of the last bin before infinity
_LONG, _DOUBLE = struct.Struct("<q"), struct.Struct("<d")
_TOP_HALF = 3 if sys.byteorder == "little" else 0  # the int16 holding a float64's top bits


def count_bins(finite: np.ndarray) -> dict[int, int]:
    """Rows per grid key. A float's top 15 bits (sign, exponent, three mantissa bits) are its
    bin; as a signed integer a negative value's bits order backwards, so the few distinct keys
    are turned around (`_ordinal`), and keys order as their values do."""
    if not len(finite):
        return {}
    raw = finite.view(np.int64) >> _SHIFT  # a strided view too: the item size is the same
    low = int(raw.min())
    counts = np.bincount(raw - low)
    present = np.flatnonzero(counts)
    keys = present + low
    keys = np.where(keys >= 0, keys, _NEGATIVE - keys)
    return dict(zip(keys.tolist(), counts[present].tolist()))


def count_bins_columns(block: np.ndarray) -> list[dict[int, int]]:
    """count_bins of each column of a 2-D block of finite values, in a few passes over the
    block whatever its width: the keys the block holds are numbered first (a bincount over
    their span, at most 2**15), then one bincount counts (column, key number) pairs. Keys are
    int16 (a float's top 16 bits, shifted once): arrays a quarter of int64's, which measured
    2.6 times faster on a profile's sample."""
    columns = np.ascontiguousarray(block.T)  # no copy from pandas, whose blocks are laid so
    top = columns.view(np.int16)[:, _TOP_HALF::4] >> 1
    low = int(top.min())
    shifted = (top - np.int16(low)).view(np.uint16)
    held = np.flatnonzero(np.bincount(shifted.ravel()))
    distinct, width = len(held), top.shape[0]
    number = np.zeros(held[-1] + 1, dtype=np.int32)
    number[held] = np.arange(distinct, dtype=np.int32)
    pairs = number[shifted]
    pairs += np.arange(width, dtype=np.int32)[:, None] * distinct
    counts = np.bincount(pairs.ravel(), minlength=width * distinct).reshape(width, distinct)
    keys = held + low
    keys = np.where(keys >= 0, keys, _NEGATIVE - keys)
    result = []
    for column in counts:
        present = np.flatnonzero(column)
        result.append(dict(zip(keys[present].tolist(), column[present].tolist())))
    return result


def count_grouped(
    groups: np.ndarray, finite: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows per (group, grid key), for many groups in one pass (a batch's rows of thousands of
    files): the groups, their keys and the counts, by group then key."""
    raw = finite.view(np.int64) >> _SHIFT  # -2**14 .. 2**14 - 1: 15 bits once offset
    pairs, counts = np.unique(
        (groups.astype(np.int64) << 15) | (raw + (1 << 14)), return_counts=True
    )
    keys = (pairs & 0x7FFF) - (1 << 14)
    return pairs >> 15, np.where(keys >= 0, keys, _NEGATIVE - keys), counts


def _ordinal(raw: int) -> int:
    return raw if raw >= 0 else _NEGATIVE - raw


def _float(bits: int) -> float:
    """The float64 of these bits (struct: a tenth of the cost of a numpy array each)."""
    value: float = _DOUBLE.unpack(_LONG.pack(bits))[0]
    return value


@functools.lru_cache(maxsize=1 << 15)  # every key: a run writes the same few hundred often
def bin_edges(key: int) -> tuple[float, float]:
    """The values a grid key holds: [lo, hi) for a key >= 0, (lo, hi] for a negative one."""
    raw = _ordinal(key)  # its own inverse
    if key >= 0:
        hi = _float((raw + 1) << _SHIFT)
        return _float(raw << _SHIFT), hi if math.isfinite(hi) else _LARGEST
    lo = _float((raw + 1) << _SHIFT)
    return (lo if math.isfinite(lo) else -_LARGEST), _float(raw << _SHIFT)


def bin_key(lo: float, hi: float) -> int:
    """The grid key of a bin written as its edges: the inverse of bin_edges."""
    bits: int = _LONG.unpack(_DOUBLE.pack(hi if lo < 0 else lo))[0]
    return _ordinal(bits >> _SHIFT)
