"""The projector registry: a stable name -> (class, typed config).

A projector registers itself in its own file with `@register("name", ConfigClass)`; the package imports
every module in its folder (`projlab.projectors.discover`), so adding one is a new file and nothing else. The
registry name is what configs, results and tables use; `table_order` is the order tables and figures list
them in, from each class's `is_control` and `table_rank`.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable

from projlab.errors import UserError

if TYPE_CHECKING:
    from projlab.projectors.base import Projector

_REGISTRY: dict[str, tuple[type["Projector"], type]] = {}


def register(name: str, config_cls: type) -> Callable[[type["Projector"]], type["Projector"]]:
    def deco(cls: type["Projector"]) -> type["Projector"]:
        if name in _REGISTRY:
            raise ValueError(f"projector {name!r} registered twice")
        cls.registry_name = name
        cls.config_cls = config_cls
        _REGISTRY[name] = (cls, config_cls)
        return cls

    return deco


def available_projectors() -> list[str]:
    return sorted(_REGISTRY)


def table_order() -> list[str]:
    """Every registered name in the order tables and figures list them: the projectors, then the controls,
    each by `table_rank`, then name."""
    def key(name: str) -> tuple[bool, int, str]:
        cls = _REGISTRY[name][0]
        return cls.is_control, cls.table_rank, name

    return sorted(_REGISTRY, key=key)


def projector_class(name: str) -> type["Projector"]:
    """The class registered as `name` (its `resolve_num_visual_tokens`, the token rule, says what M it makes)."""
    if name not in _REGISTRY:
        raise UserError(f"unknown projector {name!r}; known: {', '.join(available_projectors())}")
    return _REGISTRY[name][0]


def check_knob_names(name: str, knobs: dict[str, Any]) -> None:
    """A UserError for an unknown projector or a setting projector `name` does not have."""
    fields = {f.name for f in dataclasses.fields(projector_class(name).config_cls)}
    unknown = sorted(set(knobs) - fields)
    if unknown:
        raise UserError(
            f"projector {name!r} has no setting {unknown[0]!r}; its settings: {', '.join(sorted(fields))}"
        )


def projector_config(name: str, knobs: dict[str, Any] | None = None) -> Any:
    """The typed config of projector `name`, filled from `knobs`; unknown knobs and values no module can be
    built from are a UserError (checked here, before anything is built)."""
    knobs = dict(knobs or {})
    check_knob_names(name, knobs)
    cls = projector_class(name)
    config = cls.config_cls(**knobs)
    cls.check_config(config)
    return config


def build_projector(
    name: str,
    knobs: dict[str, Any] | None,
    vision_dim: int,
    llm_dim: int,
    grid: tuple[int, int],
) -> "Projector":
    """Build projector `name` for features of width `vision_dim` on a `grid` (rows, cols) of patches,
    mapping into an LLM of width `llm_dim`. Widths and grid come from the loaded backbones. The config's init
    scheme runs once the whole module is built (`projlab.projectors.init`)."""
    config = projector_config(name, knobs)
    projector = projector_class(name)(config, vision_dim=vision_dim, llm_dim=llm_dim, grid=tuple(grid))
    projector.initialise()
    return projector
