"""Constrained decoding: the docid prefix trie and what plugs it into generation."""

from ddro.decoding.trie import DocidTrie

__all__ = ["DocidTrie"]
