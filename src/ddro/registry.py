"""A table of named extensions (docid schemes, model architectures) that users can add to."""

from __future__ import annotations

from ddro.errors import DdroError, OptionError


class Registry(dict):
    """`name -> item` for items with a `name`; `option` is the setting that names an item, so an
    unknown name is an `OptionError` of that field."""

    def __init__(self, kind: str, option: str | None = None):
        super().__init__()
        self.kind = kind
        self.option = option

    def register(self, item):
        if item.name in self:
            raise ValueError(f"{self.kind} {item.name!r} is registered already")
        self[item.name] = item
        return item

    def lookup(self, name: str):
        if name not in self:
            problem = f"{name!r}: unknown {self.kind} (choose from {', '.join(self)})"
            raise OptionError(self.option, problem) if self.option else DdroError(f"{self.kind} {problem}")
        return self[name]
