import pytest


@pytest.fixture
def fuzz_dir(tmp_path_factory):
    """One folder for all examples of a test (file names are unique)."""
    return tmp_path_factory.mktemp("fuzz")
