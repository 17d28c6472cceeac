"""projlab: ablations of the visual projector of multimodal LLMs."""

__version__ = "0.1.0"
