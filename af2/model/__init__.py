"""AF2 model layer: config, AF-CLAP, audio transformation, Qwen2 wiring, checkpoints, importer."""
from af2.model.af2 import BATCH_KEYS, AF2Output, AudioFlamingo2, causal_lm_loss
from af2.model.afclap import AFCLAP
from af2.model.audio_transformer import AudioTransformer
from af2.model.config import STAGE_MAX_WINDOWS, STAGES, AF2Config
from af2.model.mel import LogMel

__all__ = ["AF2Config", "AF2Output", "AFCLAP", "AudioFlamingo2", "AudioTransformer", "BATCH_KEYS", "LogMel",
           "STAGES", "STAGE_MAX_WINDOWS", "causal_lm_loss"]
