"""Loading from a hub name or a local folder, with a one-line error when neither is available."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, TypeVar

from projlab.errors import UserError

T = TypeVar("T")


def load_pretrained(loader: Callable[..., T], name_or_path: str, what: str, **kwargs: Any) -> T:
    """`loader(name_or_path, **kwargs)`, turning "not found / offline" into a UserError."""
    try:
        return loader(name_or_path, **kwargs)
    except (OSError, ValueError) as err:
        if Path(name_or_path).exists():
            raise UserError(f"cannot load {what} from folder '{name_or_path}': {str(err).splitlines()[0]}") from err
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false")
        where = "offline, and it is not in the local Hugging Face cache" if offline else "it could not be fetched"
        raise UserError(
            f"cannot load {what} '{name_or_path}': not a local folder and {where}; "
            "give a local path or download the weights first"
        ) from err
