"""Vectorised casts of a chunk's column that find the values which do not cast.

Arrow casts a whole column in C, but one unparsable value fails the whole cast. Rather
than fall back to parsing value by value in Python, a failed cast is split in halves
until the bad values are isolated: k bad values in n cost O(k log n) casts, and a clean
column (the usual case) costs one.
"""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def cast_each(values: pa.Array, target: pa.DataType) -> tuple[np.ndarray, np.ndarray]:
    """`values` (without nulls) cast to `target`, as numpy, and the mask of those that failed.

    Floating targets come back float64, integer and timestamp targets int64 (timestamps
    as counts of their unit since the epoch); a failed value's slot holds 0.
    """
    dtype = np.float64 if pa.types.is_floating(target) else np.int64
    try:
        cast = pc.cast(values, target)
    except pa.ArrowInvalid:
        if len(values) == 1:
            return np.zeros(1, dtype), np.ones(1, bool)
        half = len(values) // 2
        head, head_failed = cast_each(values[:half], target)
        tail, tail_failed = cast_each(values[half:], target)
        return np.concatenate((head, tail)), np.concatenate((head_failed, tail_failed))
    if pa.types.is_timestamp(target):
        cast = cast.cast(pa.int64())
    return cast.to_numpy(zero_copy_only=False).astype(dtype, copy=False), np.zeros(
        len(values), bool
    )
