"""Emulators by provider key.  Adding one = its module + one line here (and in ``probes.registry``)."""

from __future__ import annotations

# provider key -> "module:Class"; the server imports each when it starts
EMULATORS: dict[str, str] = {
    "midjourney_proxy": "probes.emulator.midjourney_proxy:MidjourneyProxyEmulator",
    "comfyui": "probes.emulator.comfyui:ComfyUIEmulator",
    "bfl": "probes.emulator.bfl:BFLEmulator",
    "fal": "probes.emulator.fal:FalEmulator",
    "gemini": "probes.emulator.gemini:GeminiEmulator",
    "http": "probes.emulator.http:HTTPEmulator",
    "openai": "probes.emulator.openai:OpenAIEmulator",
    "replicate": "probes.emulator.replicate:ReplicateEmulator",
    "stability": "probes.emulator.stability:StabilityEmulator",
    "huggingface": "probes.emulator.huggingface:HuggingFaceEmulator",
    "automatic1111": "probes.emulator.automatic1111:Automatic1111Emulator",
}
