"""The DeepSpeed trainer of AF2's curriculum (installed with ``pip install 'af2[train]'``).

Stage configs ship in ``training/configs`` (``--config pretrain`` names one of them, see
:func:`training.config.resolve_config_path`). tensorboard and wandb are checked when a config
asks for them (training/config.py), matplotlib when the demo starts.
"""

from af2._deps import all_modules, require

require("training", "train", [m for m in all_modules("train") if m not in ("tensorboard", "matplotlib")])
