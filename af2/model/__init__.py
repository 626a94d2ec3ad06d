"""AF2 model layer: config, AF-CLAP, audio transformation, Qwen2 wiring, processor, checkpoints, importer.

Importing it registers AF2 with transformers' Auto classes (af2.model.hub.register_auto_classes).
"""

from af2._deps import require

require("af2.model", "model")

from af2.model.af2 import (  # noqa: E402
    BATCH_KEYS,
    AF2Output,
    AudioFlamingo2,
    AudioFlamingo2ForConditionalGeneration,
    AudioFlamingo2PreTrainedModel,
    causal_lm_loss,
)
from af2.model.afclap import AFCLAP  # noqa: E402
from af2.model.audio_transformer import AudioTransformer  # noqa: E402
from af2.model.config import STAGE_MAX_WINDOWS, STAGES, AF2Config  # noqa: E402
from af2.model.configuration_af2 import AudioFlamingo2AudioTransformerConfig, AudioFlamingo2Config  # noqa: E402
from af2.model.hub import register_auto_classes  # noqa: E402
from af2.model.mel import LogMel  # noqa: E402
from af2.model.processing_af2 import AudioFlamingo2FeatureExtractor, AudioFlamingo2Processor  # noqa: E402

register_auto_classes()

__all__ = [
    "AF2Config",
    "AF2Output",
    "AFCLAP",
    "AudioFlamingo2",
    "AudioFlamingo2AudioTransformerConfig",
    "AudioFlamingo2Config",
    "AudioFlamingo2FeatureExtractor",
    "AudioFlamingo2ForConditionalGeneration",
    "AudioFlamingo2PreTrainedModel",
    "AudioFlamingo2Processor",
    "AudioTransformer",
    "BATCH_KEYS",
    "LogMel",
    "STAGES",
    "STAGE_MAX_WINDOWS",
    "causal_lm_loss",
    "register_auto_classes",
]
