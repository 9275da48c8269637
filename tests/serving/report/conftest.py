from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support.scored import scored_table


@pytest.fixture
def scored(tmp_path) -> Path:
    """A scored Parquet file of ten routed messages, as kefu score writes it."""
    path = tmp_path / "scored.parquet"
    pq.write_table(scored_table(), path)
    return path
