"""Struct: the immutable-pytree base shared by operators, priors and losses.

Subclasses declare fields as class annotations. Fields declared with :func:`static_field`
are static pytree metadata (shapes, axes, modes, names, callables: hashable values); all other
fields are leaves (arrays, scalars, nested structs). ``__init__`` assigns each field once;
afterwards the object is immutable. Pytree unflattening bypasses ``__init__``, so derived
fields (a kernel spectrum) are computed once, when the user builds the object.

Example:
    >>> import jax, jax.numpy as jnp
    >>> from calcil._internal.struct import Struct, static_field
    >>> class Scale(Struct):
    ...     factor: jax.Array
    ...     name: str = static_field()
    ...     def __init__(self, factor, name="scale"):
    ...         self.factor, self.name = jnp.asarray(factor), name
    >>> jax.tree_util.tree_leaves(Scale(2.0))
    [Array(2., dtype=float32, weak_type=True)]
"""

import dataclasses
import operator
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Struct", "merge_terms", "short_repr", "static_field"]


def static_field(**kwargs) -> Any:
    """A dataclass field that is static pytree metadata (shapes, axes, modes, callables)."""
    return dataclasses.field(metadata={"static": True}, **kwargs)


def short_repr(value) -> str:
    """A compact description of a field value: ``f4[15,15]`` for arrays."""
    if isinstance(value, jax.Array | np.ndarray):
        if value.ndim == 0 and not isinstance(value, jax.core.Tracer):
            return f"{value.item():.4g}"
        code = jnp.dtype(value.dtype).str[1:]  # f4, c8, i4, b1 ...
        return f"{code}[{','.join(map(str, value.shape))}]"
    if isinstance(value, float | complex):
        return f"{value:.4g}"
    if isinstance(value, Struct):
        return repr(value)
    if callable(value):
        return getattr(value, "__name__", type(value).__name__)
    return repr(value)


def _getter(names):
    """A fast ``obj -> tuple(getattr(obj, n) for n in names)``."""
    if not names:
        return lambda obj: ()
    get = operator.attrgetter(*names)
    return (lambda obj: (get(obj),)) if len(names) == 1 else get


def merge_terms(term_dicts) -> dict:
    """Merge named terms of a sum; a repeated name gets a suffix (``l2``, ``l2_2``, ...)."""
    out = {}
    for terms in term_dicts:
        for name, value in terms.items():
            key, i = name, 2
            while key in out:
                key, i = f"{name}_{i}", i + 1
            out[key] = value
    return out


class Struct:
    """Base class of immutable pytree objects (see the module docstring)."""

    # Names a subclass may not use as fields (they would hide methods of the family).
    _reserved_names: ClassVar[frozenset] = frozenset()
    # NumPy defers binary operators to us (``np.ones(2) * prior`` reaches ``__rmul__``
    # instead of broadcasting the struct into an object array).
    __array_ufunc__ = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        dataclasses.dataclass(init=False, repr=False, eq=False)(cls)
        fields = dataclasses.fields(cls)
        clashes = {f.name for f in fields} & cls._reserved_names
        if clashes:
            raise TypeError(
                f"{cls.__name__} declares field(s) {sorted(clashes)} that would hide "
                "methods of its base class; rename them."
            )
        data = tuple(f.name for f in fields if not f.metadata.get("static"))
        meta = tuple(f.name for f in fields if f.metadata.get("static"))
        keys = tuple(jax.tree_util.GetAttrKey(name) for name in data)

        # attrgetter keeps flattening (done on every jit call with a struct argument) cheap.
        get_data = _getter(data)
        get_meta = _getter(meta)

        def flatten_with_keys(obj):
            return tuple(zip(keys, get_data(obj), strict=True)), get_meta(obj)

        def flatten(obj):
            return get_data(obj), get_meta(obj)

        def unflatten(aux, children):
            obj = object.__new__(cls)
            for name, value in zip(meta, aux, strict=True):
                object.__setattr__(obj, name, value)
            for name, value in zip(data, children, strict=True):
                object.__setattr__(obj, name, value)
            return obj

        jax.tree_util.register_pytree_with_keys(cls, flatten_with_keys, unflatten, flatten)

    def __setattr__(self, name, value):
        if name in self.__dict__:
            raise dataclasses.FrozenInstanceError(
                f"{type(self).__name__} is immutable: cannot reassign {name!r}. Build a new "
                "object instead (these are pytrees: use jax.tree_util.tree_map or the "
                "constructor)."
            )
        if name not in {f.name for f in dataclasses.fields(self)}:
            raise AttributeError(
                f"{type(self).__name__} has no field {name!r}; declare it as a class "
                "annotation (static ones with static_field())."
            )
        object.__setattr__(self, name, value)

    def _repr_fields(self) -> dict[str, Any]:
        """The fields shown by ``repr`` (override to hide derived ones)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def __repr__(self):
        parts = ", ".join(f"{k}={short_repr(v)}" for k, v in self._repr_fields().items())
        return f"{type(self).__name__}({parts})"


dataclasses.dataclass(init=False, repr=False, eq=False)(Struct)
