"""Every projector of the study behind one registry. Importing this package registers them all."""
from projlab.projectors import (  # noqa: F401  (imported for registration)
    avgpool,
    c_abstractor,
    c_abstractor_elastic,
    controls,
    d_abstractor,
    ldpv2,
    linear,
    mlp,
    perceiver,
    pixel_shuffle,
    qformer,
    resampler,
    tokenpacker,
)
from projlab.projectors.base import Projector
from projlab.projectors.registry import available_projectors, build_projector, projector_config, register

__all__ = ["Projector", "available_projectors", "build_projector", "projector_config", "register"]
