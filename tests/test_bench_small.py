"""The bench's ``small`` section (issue 19 item 4): every call of every
implementation computes the NumPy twin's answer, and the section prints its
table in microseconds."""
import io

import numpy as np
import pytest

from fastxent import _bench_small as small


@pytest.mark.parametrize("impl", small.IMPLS)
@pytest.mark.parametrize("shape", small.SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_small_calls_agree_with_numpy_twin(impl, shape):
    if impl == "torch":
        pytest.importorskip("torch")
    x, target, bin_target = small.make(shape)
    assert x.dtype == np.float64 and target.dtype == np.int64 and bin_target.shape == shape
    want = small.calls("numpy", x, target, bin_target)
    got = small.calls(impl, x, target, bin_target)
    assert set(got) == set(small.CALLS)
    for call in small.CALLS:
        assert small._check(impl, call, got[call](), want[call]()) is None, call


def test_a_wrong_answer_is_caught():
    x, target, bin_target = small.make((4, 3))
    want = small.calls("numpy", x, target, bin_target)["softmax"]()
    assert small._check("fastxent", "softmax", want + 1e-6, want) is not None


def test_mean_call_seconds_is_per_call():
    calls = []
    t = small.mean_call_seconds(lambda: calls.append(1), target_seconds=0.002, rounds=3)
    assert 0 < t < 1e-3 and len(calls) > 3


def test_section_prints_microseconds(keep_num_threads):
    import fastxent
    before = fastxent.get_num_threads()
    out = io.StringIO()
    seconds = small.run_section(tiny=True, peers=(), out=out, err=io.StringIO())
    assert fastxent.get_num_threads() == before        # the section's one thread is undone
    text = out.getvalue()
    assert "| shape | call" in text and "fastxent µs" in text
    rows = [line for line in text.splitlines() if line.startswith("| 4x3") or line.startswith("| 64x10")]
    assert len(rows) == len(small.SHAPES) * len(small.CALLS)
    assert all(seconds[(shape, call, "fastxent")] > 0 for shape in small.SHAPES for call in small.CALLS)
    assert "64x10 over 4x3" in text
