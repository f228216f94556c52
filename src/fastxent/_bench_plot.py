"""``python -m fastxent bench --plot FILE.png``: the W1-W5 table as grouped bars.

One panel per workload; along it, a group per (op, threads); in each group a
bar per implementation that ran (fastxent, NumPy, PyTorch, JAX, scikit-learn),
in milliseconds on a log scale, with the workload's copy floor as a dashed
line.  Drawn with matplotlib's object API (no pyplot, so no global state and
no display needed).
"""
from __future__ import annotations

COLORS = {"fastxent": "#1b9e77", "numpy": "#7f7f7f", "torch": "#d95f02", "jax": "#7570b3",
          "sklearn": "#e7298a"}


def plot_results(results, path, *, title="fastxent bench") -> None:
    """Draws ``results`` (``_bench.Result`` rows) into ``path`` (.png, .svg, .pdf)."""
    from matplotlib.figure import Figure  # optional

    labels = list(dict.fromkeys(r.label for r in results))
    if not labels:
        raise ValueError("nothing to plot: no workload was timed")
    impls = [i for i in COLORS if any(r.seconds.get(i) is not None for r in results)]
    fig = Figure(figsize=(12, 2.8 * len(labels) + 0.6), layout="constrained")
    axes = fig.subplots(len(labels), 1, squeeze=False)[:, 0]
    width = 0.8 / max(len(impls), 1)
    for ax, label in zip(axes, labels):
        rows = [r for r in results if r.label == label]
        for k, impl in enumerate(impls):
            xs, hs = [], []
            for g, r in enumerate(rows):
                s = r.seconds.get(impl)
                if s is not None:
                    xs.append(g + (k - (len(impls) - 1) / 2) * width)
                    hs.append(s * 1e3)
            ax.bar(xs, hs, width, color=COLORS[impl], label=impl)
        ax.axhline(rows[0].floors.copy * 1e3, color="black", linestyle="--", linewidth=0.8,
                   label="copy floor")
        ax.set_yscale("log")
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([f"{r.op}\n{r.threads}T" for r in rows], fontsize=8)
        ax.set_ylabel("ms")
        ax.set_title(label, loc="left", fontsize=10)
    axes[0].legend(ncol=len(impls) + 1, fontsize=8, loc="upper right")
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)
