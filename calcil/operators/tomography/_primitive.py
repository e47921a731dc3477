"""Projection and back-projection as a pair of JAX primitives, each the other's transpose.

Differentiating ``0.5 ||P x - y||^2`` with JAX transposes ``P``. Left to itself, JAX would
transpose the gathers of Joseph's projector into scatter-adds, many times slower than the
projection on CPU, and store every chunk's sample indices for the backward pass. Here the
projection is one primitive whose transpose rule is a hand-written back-projector (a gather
for the parallel beam; chunked, memory-bounded transposition for the others) and vice versa,
so gradients, ``P.H`` and ``jax.linear_transpose`` all use it, in any order of ``jit``,
``grad``, ``jvp`` and ``vmap``.

A *spec* is a frozen, hashable dataclass with the static geometry; it provides

* ``image_shape`` (the grid, without batch axes) and ``sinogram_shape(n_angles)``;
* ``project(image, *geometry)`` and ``back_project(sinogram, *geometry)``: plain JAX, exact
  adjoints of each other in the image/sinogram argument, with trailing batch axes carried
  along (``image[*grid, *batch]``, ``sinogram[angles, *detector, *batch]``).

The geometry operands (angles, distances) are ordinary differentiable inputs: their
derivatives come from differentiating the plain JAX ``project``/``back_project``.
"""

import jax
import jax.numpy as jnp
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

__all__ = ["back_project", "project"]


def project(image, *geometry, spec):
    """``spec.project(image, *geometry)`` with the transpose ``spec.back_project``."""
    return _project_p.bind(*_same_varying(image, *geometry), spec=spec)


def back_project(sinogram, *geometry, spec):
    """``spec.back_project(sinogram, *geometry)`` with the transpose ``spec.project``."""
    return _back_project_p.bind(*_same_varying(sinogram, *geometry), spec=spec)


def _varying(x) -> frozenset:
    """The ``shard_map`` mesh axes along which ``x`` varies (empty outside ``shard_map``)."""
    aval = jax.typeof(x)
    manual = getattr(aval, "manual_axis_type", None)
    return frozenset(manual.varying if manual is not None else getattr(aval, "vma", ()))


def _same_varying(*operands):
    """Inside ``shard_map`` every operand marked varying along the axes any of them varies
    on (``pcast``), as JAX's own primitives do: an image replicated over the devices and
    angles split among them give a per-device sinogram, and the transpose of that cast sums
    the image's cotangent over the devices."""
    axes = frozenset().union(*(_varying(x) for x in operands))
    if not axes:
        return operands
    return tuple(
        jax.lax.pcast(x, tuple(sorted(axes - _varying(x))), to="varying")
        if axes - _varying(x)
        else x
        for x in operands
    )


def _project_shape(x, geometry, spec):
    batch = x.shape[len(spec.image_shape) :]
    return (*spec.sinogram_shape(geometry[0].shape[0]), *batch)


def _back_project_shape(y, geometry, spec):
    batch = y.shape[len(spec.sinogram_shape(geometry[0].shape[0])) :]
    return (*spec.image_shape, *batch)


def _define(name, method, shape_rule):
    primitive = Primitive(name)

    def impl(x, *geometry, spec):
        return getattr(spec, method)(x, *geometry)

    primitive.def_impl(jax.jit(impl, static_argnames="spec"))

    def abstract(x, *geometry, spec):
        # x's abstract value with the output's shape: same dtype, and inside shard_map the
        # same varying axes (every operand has them, see _same_varying)
        return x.update(shape=shape_rule(x, geometry, spec), weak_type=False)

    primitive.def_abstract_eval(abstract)
    mlir.register_lowering(primitive, mlir.lower_fun(impl, multiple_results=False))
    return primitive, impl


_project_p, _project_impl = _define("calcil_project", "project", _project_shape)
_back_project_p, _back_project_impl = _define(
    "calcil_back_project", "back_project", _back_project_shape
)
_DUAL = {_project_p: _back_project_p, _back_project_p: _project_p}
_IMPL = {_project_p: _project_impl, _back_project_p: _back_project_impl}
_WRAPPER = {_project_p: project, _back_project_p: back_project}


def _jvp_rule(primitive):
    """Linear in the first operand; the geometry's tangent by differentiating the plain JAX
    implementation (which is where a gradient with respect to the angles comes from)."""

    def jvp(primals, tangents, *, spec):
        x, *geometry = primals
        x_dot, *geometry_dots = tangents
        apply = _WRAPPER[primitive]
        out = apply(x, *geometry, spec=spec)
        if type(x_dot) is ad.Zero:
            tangent = jnp.zeros_like(out)
        else:
            tangent = apply(x_dot, *geometry, spec=spec)
        if any(type(d) is not ad.Zero for d in geometry_dots):
            dots = [ad.instantiate_zeros(d) for d in geometry_dots]
            impl = _IMPL[primitive]
            _, moved = jax.jvp(lambda *g: impl(x, *g, spec=spec), tuple(geometry), tuple(dots))
            tangent = tangent + moved
        return out, tangent

    return jvp


def _transpose_rule(primitive):
    def transpose(cotangent, x, *geometry, spec):
        if any(ad.is_undefined_primal(g) for g in geometry):
            raise ValueError(
                "a projection is linear in its image only, not in its geometry (angles, "
                "distances): it cannot be transposed with respect to them"
            )
        if type(cotangent) is ad.Zero:
            return (ad.Zero(x.aval), *([None] * len(geometry)))
        dual = _WRAPPER[_DUAL[primitive]](cotangent, *geometry, spec=spec)
        return (dual, *([None] * len(geometry)))

    return transpose


def _batch_rule(primitive):
    """A batched image or sinogram becomes a trailing batch axis (one projection for the
    whole batch); batched geometry runs one problem at a time with ``lax.map``."""

    def batch(args, dims, *, spec):
        x, *geometry = args
        x_dim, *geometry_dims = dims
        if all(d is None for d in geometry_dims):  # None: not batched
            x = jnp.moveaxis(x, x_dim, -1)
            out = _WRAPPER[primitive](x, *geometry, spec=spec)
            return out, out.ndim - 1
        size = next(a.shape[d] for a, d in zip(args, dims, strict=True) if d is not None)

        def front(a, d):
            if d is None:
                return jnp.broadcast_to(a, (size, *a.shape))
            return jnp.moveaxis(a, d, 0)

        stacked = [front(a, d) for a, d in zip(args, dims, strict=True)]
        out = jax.lax.map(lambda a: _WRAPPER[primitive](*a, spec=spec), stacked)
        return out, 0

    return batch


for _p in (_project_p, _back_project_p):
    ad.primitive_jvps[_p] = _jvp_rule(_p)
    ad.primitive_transposes[_p] = _transpose_rule(_p)
    batching.primitive_batchers[_p] = _batch_rule(_p)
