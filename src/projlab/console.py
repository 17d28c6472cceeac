"""Keep the terminal for what matters: the progress bar, the freeze report, errors."""
from __future__ import annotations

import logging
import os
import warnings


def quiet_third_party() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    for pattern in (
        ".*LeafSpec.*",
        ".*module\\(s\\) in eval mode.*",
        ".*does not have many workers.*",
        ".*litlogger.*",
        ".*`training_step` returned `None`.*",
        ".*recommended to use `self.log\\(.*sync_dist=True.*",
        ".*returned a view tensor.*",
        ".*The `srun` command is available.*",  # a local arm on a machine with SLURM; SLURM arms run under srun
    ):
        warnings.filterwarnings("ignore", message=pattern)
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        lambda record: "litlogger" not in record.getMessage() and "TPU available" not in record.getMessage()
    )
