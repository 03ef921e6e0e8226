"""The layer runs on Python 3.11, where a fresh Debian 12 machine's `python3` is.

Python 3.11's dataclasses refuse a field default whose type is unhashable (the check behind
"mutable default <class 'mappingproxy'> for field redacted is not allowed"); 3.12 made mappingproxy
hashable, so on 3.12+ the import works and only 3.11 fails. This applies 3.11's rule here (by
hashing each default), whatever Python runs the tests.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil

import memory_bridge


def every_layer_module():
    for info in pkgutil.walk_packages(memory_bridge.__path__, "memory_bridge."):
        yield importlib.import_module(info.name)


def test_no_dataclass_field_has_a_default_that_python_311_refuses():
    refused = []
    for module in every_layer_module():
        for value in vars(module).values():
            if (
                not (isinstance(value, type) and dataclasses.is_dataclass(value))
                or value.__module__ != module.__name__
            ):
                continue
            for field in dataclasses.fields(value):
                default = field.default
                if default is dataclasses.MISSING:
                    continue
                try:
                    # 3.11 asks the class; on 3.12+ a mappingproxy's class says yes, but hashing it
                    # still fails for the dict inside, so hashing catches what 3.11 refuses.
                    hash(default)
                except TypeError:
                    refused.append(
                        f"{module.__name__}.{value.__name__}.{field.name}: {type(default).__name__}"
                    )
    assert refused == []
