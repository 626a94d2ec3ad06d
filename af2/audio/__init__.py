"""AF2's audio input, shared by the model's processor and the data pipeline.

Modules: :mod:`~af2.audio.io` (any audio file to a 16 kHz mono tensor, every bad input a named
:class:`~af2.audio.io.AudioError`) and :mod:`~af2.audio.windows` (the 10-s windows the audio
encoder consumes, and their content keys).
"""

from af2._deps import require

require("af2.audio", "audio")
