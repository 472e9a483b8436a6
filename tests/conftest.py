import os

import matplotlib
import pytest

matplotlib.use("Agg")


@pytest.fixture
def clean_env(monkeypatch):
    """No DCTUTOR_* variables from the caller's shell."""
    for key in list(os.environ):
        if key.startswith("DCTUTOR_"):
            monkeypatch.delenv(key, raising=False)
    return monkeypatch


def shared_data_root():
    """The offline copies of MNIST / Fashion-MNIST, if this machine has them."""
    env = os.environ.get("DCTUTOR_DATA")
    if env and os.path.isdir(os.path.join(env, "mnist")):
        return env
    here = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
    return here if os.path.isdir(os.path.join(here, "mnist")) else None
