"""Model-input matrices assembled bar by bar (design §6 column schemas)."""

from actors.matrices.assembler import MatrixAssembler
from actors.matrices.schemas import STRATEGIC_COLUMNS, STRATEGIC_ZSCORE, TACTICAL_COLUMNS

__all__ = ["STRATEGIC_COLUMNS", "STRATEGIC_ZSCORE", "TACTICAL_COLUMNS", "MatrixAssembler"]
