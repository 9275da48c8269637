import pytest
from support.evaluation import write_evaluation_data


@pytest.fixture(scope="module")
def evaluation_data(tmp_path_factory):
    """Labelled seed and real test files, their training split and public dev sets."""
    return write_evaluation_data(tmp_path_factory.mktemp("evaluation-data"))
