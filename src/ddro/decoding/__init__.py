"""Constrained decoding: the docid prefix trie and the beam search that carries its states.

`beam_search` is imported on first use, so the trie alone does not load torch.
"""

from importlib import import_module

from ddro.decoding.trie import DocidTrie

__all__ = ["DocidTrie", "beam_search", "BeamSearchResult"]


def __getattr__(name):
    if name in ("beam_search", "BeamSearchResult"):
        return getattr(import_module("ddro.decoding.beam"), name)
    raise AttributeError(f"module 'ddro.decoding' has no attribute {name!r}")
