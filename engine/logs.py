"""Keep diffusers and transformers quiet in workers: no per-step bars, no notices about optional
backends (torchvision). Imported before either library, since some notices fire at import time."""
from transformers.utils import logging as transformers_logging

transformers_logging.set_verbosity_error()
transformers_logging.disable_progress_bar()

from diffusers.utils import logging as diffusers_logging  # noqa: E402  (after transformers is hushed)

diffusers_logging.set_verbosity_error()
diffusers_logging.disable_progress_bar()
