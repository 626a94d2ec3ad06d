"""AF2 model layer: config, AF-CLAP, audio transformation, Qwen2 wiring, checkpoints, importer."""
from af2._deps import require

require("af2.model", "model")

from af2.model.af2 import BATCH_KEYS, AF2Output, AudioFlamingo2, causal_lm_loss  # noqa: E402
from af2.model.afclap import AFCLAP  # noqa: E402
from af2.model.audio_transformer import AudioTransformer  # noqa: E402
from af2.model.config import STAGE_MAX_WINDOWS, STAGES, AF2Config  # noqa: E402
from af2.model.mel import LogMel  # noqa: E402

__all__ = ["AF2Config", "AF2Output", "AFCLAP", "AudioFlamingo2", "AudioTransformer", "BATCH_KEYS", "LogMel",
           "STAGES", "STAGE_MAX_WINDOWS", "causal_lm_loss"]
