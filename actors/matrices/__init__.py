"""Model-input matrices assembled bar by bar (design §6 column schemas)."""

from actors.matrices.assembler import MatrixAssembler
from actors.matrices.schemas import (
    STRATEGIC_COLUMNS,
    STRATEGIC_ROWS,
    STRATEGIC_ZSCORE,
    TACTICAL_COLUMNS,
    TACTICAL_ROWS,
    StrategicColumn,
    TacticalColumn,
)

__all__ = [
    "STRATEGIC_COLUMNS",
    "STRATEGIC_ROWS",
    "STRATEGIC_ZSCORE",
    "TACTICAL_COLUMNS",
    "TACTICAL_ROWS",
    "MatrixAssembler",
    "StrategicColumn",
    "TacticalColumn",
]
