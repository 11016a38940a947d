"""A faster ``__init__`` for the frozen dataclasses made on every event (decisions, notifications).

A frozen dataclass's generated ``__init__`` sets each field through ``object.__setattr__``, a
call per field: about 2 µs for a decision's eleven fields, more than deciding it. The ``__init__``
made here has the same signature and defaults and writes the fields into the instance dict
(what ``object.__setattr__`` does for a class without slots); the class stays frozen (assigning
a field still raises ``FrozenInstanceError``), equal and hashable as before. Only plain fields:
a class with slots, ``__post_init__``, ``InitVar``, ``init=False`` or keyword-only fields is
refused when decorated, so a new field of another shape fails at import, not silently.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")

_NO_ARGUMENT = object()  # a default_factory field's marker: the argument was not given


def fast_frozen_init(cls: type[T]) -> type[T]:
    """Apply below ``@dataclass(frozen=True)``: the decorated class with the faster ``__init__``."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" in cls.__dict__ or hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__}: fast_frozen_init needs a frozen dataclass without slots or __post_init__")
    namespace: dict[str, Any] = {"_NO_ARGUMENT": _NO_ARGUMENT}
    args, body = ["self"], ["d = self.__dict__"]
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]  # checked above: a dataclass
        if not f.init or f.kw_only or f.name in ("self", "d"):
            raise TypeError(f"{cls.__name__}.{f.name}: fast_frozen_init takes plain positional fields only")
        if f.default_factory is not dataclasses.MISSING:
            namespace[f"_factory_{f.name}"] = f.default_factory
            args.append(f"{f.name}=_NO_ARGUMENT")
            body.append(f"d[{f.name!r}] = _factory_{f.name}() if {f.name} is _NO_ARGUMENT else {f.name}")
            continue
        if f.default is not dataclasses.MISSING:
            namespace[f"_default_{f.name}"] = f.default
            args.append(f"{f.name}=_default_{f.name}")
        else:
            args.append(f.name)
        body.append(f"d[{f.name!r}] = {f.name}")
    source = f"def __init__({', '.join(args)}):\n    " + "\n    ".join(body) + "\n"
    exec(source, namespace)  # built from the field names above, as dataclasses itself does
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    setattr(cls, "__init__", init)  # noqa: B010 - replacing a method
    return cls
