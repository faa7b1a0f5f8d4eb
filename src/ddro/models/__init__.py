"""Seq2seq models that write docids, and the presets that configure them."""

from ddro.models.docid_model import DocidModel, build_docid_model
from ddro.models.presets import DEFAULT_PRESET, PRESETS, Preset, get_preset

__all__ = ["DocidModel", "build_docid_model", "DEFAULT_PRESET", "PRESETS", "Preset", "get_preset"]
