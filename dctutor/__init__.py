"""dctutor — the code behind the book *Deep clustering, from PCA to IIC*.

Modules, one idea each (the chapter that derives each is in brackets):

* :mod:`dctutor.config` — profiles, device, seeding, the schedule table (Introduction)
* :mod:`dctutor.data` — MNIST, Fashion-MNIST and the embedded 5,000-digit sample (Introduction)
* :mod:`dctutor.metrics` — ``cluster_acc``, ``nmi``, ``ari``, label alignment (Introduction)
* :mod:`dctutor.training` — minibatch indices, ``History``, NaN checks (shared by trainers)
* :mod:`dctutor.plots` — the shared figures and the house style
"""

from importlib import import_module

__version__ = "0.1.0"

from . import config, data, metrics, training  # noqa: E402  (light modules, always loaded)

_LAZY = {"book", "plots", "pca", "autoencoders", "dec", "iic", "augment", "cli"}


def __getattr__(name):
    # Heavier modules (matplotlib, the models) load on first use: ``dctutor.plots`` just works.
    if name in _LAZY:
        return import_module(f".{name}", __name__)
    raise AttributeError(f"module 'dctutor' has no attribute {name!r}")


__all__ = ["config", "data", "metrics", "training", *sorted(_LAZY), "__version__"]
