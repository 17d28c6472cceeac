"""Every projector of the study behind one registry. Importing this package registers them all: each module of
this folder is imported (`discover`), and a projector's module registers its class (`@register`)."""
from __future__ import annotations

import importlib
import pkgutil

from projlab.projectors.base import Projector
from projlab.projectors.registry import available_projectors, build_projector, projector_config, register


def discover() -> None:
    """Import every module on this package's path (a module imported before is not imported again)."""
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


discover()

__all__ = ["Projector", "available_projectors", "build_projector", "discover", "projector_config", "register"]
