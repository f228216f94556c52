"""The command line of each gallery example when the documentation is built.

sphinx-gallery runs every script of examples/ during the build; the ones whose
defaults take tens of seconds run here in a smaller mode, chosen to keep their
page meaningful (a training curve that converges, a benchmark of the real
workloads).  Each script's docstring says what its page was built with.
conf.py names :func:`reset_argv` in ``sphinx_gallery_conf["reset_argv"]``.
"""
import os

GALLERY_ARGV = {
    # 3 epochs of 3000 images: accuracy 0.96 in a few seconds (defaults: 0.972, ~20 s)
    "seed_002_mnist_mlp.py": ["--epochs", "3", "--n-train", "3000"],
    # one epoch of 3000 images, both models (defaults: 4 epochs of 8000, about a minute)
    "torch_mlp.py": ["--epochs", "1", "--n-train", "3000"],
    # the median of 3 calls per bar instead of 5
    "bench_bars.py": ["--repeat", "3"],
    # 5000 samples instead of 20000: the same agreement, rounds a few times shorter
    "xgboost_objective.py": ["--n-samples", "5000"],
    "lightgbm_objective.py": ["--n-samples", "5000"],
}


def reset_argv(gallery_conf, script_vars):
    """``sys.argv[1:]`` for the example ``script_vars["src_file"]``."""
    return list(GALLERY_ARGV.get(os.path.basename(script_vars["src_file"]), []))
