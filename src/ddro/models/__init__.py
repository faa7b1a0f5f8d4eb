"""Seq2seq models that write docids, their architectures, and the presets that configure them."""

from ddro.models.architectures import Architecture, get_architecture, register_architecture
from ddro.models.docid_model import DocidModel, build_docid_model
from ddro.models.presets import DEFAULT_PRESET, PRESETS, DocidPlan, NetworkConfig, Preset, get_preset

__all__ = ["Architecture", "DocidModel", "DocidPlan", "NetworkConfig", "build_docid_model", "get_architecture",
           "register_architecture", "DEFAULT_PRESET", "PRESETS", "Preset", "get_preset"]
