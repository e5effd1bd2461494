"""Constrained value types for configuration Structs, defined once for every package.

Floats are bounded by the largest finite double, so `inf` and `nan` (both valid TOML)
fail validation with the field's path instead of slipping into a limit or a price.
"""

import sys
from typing import Annotated

import msgspec

_MAX = sys.float_info.max

Finite = Annotated[float, msgspec.Meta(ge=-_MAX, le=_MAX)]
"""Any finite float."""
Positive = Annotated[float, msgspec.Meta(gt=0, le=_MAX)]
"""A finite float above zero."""
NonNegative = Annotated[float, msgspec.Meta(ge=0, le=_MAX)]
"""A finite float at or above zero."""
Fraction = Annotated[float, msgspec.Meta(gt=0, le=1)]
"""A share in (0, 1]."""
Probability = Annotated[float, msgspec.Meta(ge=0, le=1)]
"""A probability in [0, 1]."""
Count = Annotated[int, msgspec.Meta(ge=0)]
"""An integer at or above zero."""
AtLeastOne = Annotated[int, msgspec.Meta(ge=1)]
"""An integer at or above one."""
Weekday = Annotated[int, msgspec.Meta(ge=0, le=6)]
"""Monday = 0 ... Sunday = 6."""
Name = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")]
"""A name used in segment paths and config references."""
