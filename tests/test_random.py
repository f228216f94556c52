"""Random shapes, class axes and options (hypothesis) for cross_entropy and
nll_loss against the float64 reference: the corners a hand-written matrix
misses (C == 1, size-1 axes, any axis of up to 4-D inputs)."""
from __future__ import annotations

import numpy as np
import pytest

import fastxent as fx
import reference as ref
from helpers import (REDUCTIONS, RTOL, assert_close, assert_grad_close, make_case, sample_shape,
                     upstream)

hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies


@st.composite
def random_problems(draw):
    ndim = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=ndim, max_size=ndim)))
    axis = draw(st.one_of(st.none(), st.integers(-ndim, ndim - 1)))
    C = draw(st.integers(1, 40))
    shape = list(shape)
    shape[ref.class_axis(axis, ndim)] = C
    return dict(shape=tuple(shape), axis=axis, C=C,
                target_kind=draw(st.sampled_from(["index", "prob"])),
                weighted=draw(st.booleans()),
                eps=draw(st.sampled_from([0.0, 0.1, 1.0])),
                reduction=draw(st.sampled_from(REDUCTIONS)),
                dtype=draw(st.sampled_from([np.float64, np.float32])),
                seed=draw(st.integers(0, 2**32 - 1)))


@hypothesis.settings(max_examples=100, deadline=None, derandomize=True,
                     suppress_health_check=[hypothesis.HealthCheck.too_slow])
@hypothesis.given(random_problems())
def test_random_problems_match_reference(p):
    rng = np.random.default_rng(p["seed"])
    x, t, w = make_case(rng, p["shape"], p["axis"], p["target_kind"], p["weighted"])
    dtype = np.dtype(p["dtype"])
    x = x.astype(dtype)
    if p["target_kind"] == "prob":
        t = t.astype(dtype)
    go = upstream(rng, p["reduction"], sample_shape(p["shape"], p["axis"]))
    kw = dict(reduction=p["reduction"], label_smoothing=p["eps"], axis=p["axis"])
    loss, grad = fx.cross_entropy(x, t, w, return_grad=True, grad_output=go, **kw)
    want, want_grad = ref.cross_entropy(x, t, w, return_grad=True, grad_output=go, **kw)
    finite = np.asarray(want)[np.isfinite(want)]
    scale = float(np.max(np.abs(finite))) if finite.size else 0.0
    assert_close(loss, want, rtol=RTOL[dtype], atol=RTOL[dtype] * scale)
    assert_grad_close(grad, want_grad, dtype)
    if p["target_kind"] == "index":
        nll, nll_grad = fx.nll_loss(x, t, w, reduction=p["reduction"], axis=p["axis"],
                                    return_grad=True, grad_output=go)
        want, want_grad = ref.nll_loss(x, t, w, reduction=p["reduction"], axis=p["axis"],
                                       return_grad=True, grad_output=go)
        assert_close(nll, want, rtol=RTOL[dtype], atol=RTOL[dtype])
        assert_close(nll_grad, want_grad, rtol=RTOL[dtype])
