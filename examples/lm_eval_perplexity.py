"""
Perplexity over a token stream too long for its logits
======================================================

The per-token loss and perplexity of a language model's output layer over a
token stream whose logits could never be held in memory.

A small random "model" reads a stream of tokens drawn from a Zipf-like
distribution (as word frequencies are): its hidden state at each position comes
from the previous token, and its output layer (an embedding of V = 32000 rows and
a bias) gives the logits of the next token.  ``fastxent.linear_cross_entropy``
computes each token's loss from the hidden states and the output embedding a
chunk of tokens at a time, so only ``chunk_size x V`` logits exist at any moment,
however long the stream: at the default size the whole stream's logits would be
2.1 GB in float32, and with ``--tokens 10000000`` 1.3 TB, while this script holds
at most 131 MB of them (1024 tokens x 32000 classes x 4 bytes).

The first token of each document has no context: its target is ignored
(``ignore_index``) and adds nothing to the loss, as padding does in an LM
evaluation.  The perplexity is ``exp`` of the mean loss over the scored tokens;
the stream's own unigram perplexity (what a model knowing only the token
frequencies would reach) is printed beside it.

Run it as a plain script (progress bar on stderr, results on stdout)::

    python examples/lm_eval_perplexity.py                   # 16384 tokens, seconds
    python examples/lm_eval_perplexity.py --tokens 1000000  # a larger stream

The functions (``make_model``, ``token_stream``, ``evaluate``) return arrays;
where matplotlib is installed, the script ends by drawing the perplexity over
the stream from the per-token losses.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

import numpy as np

import fastxent

IGNORE = -100


@dataclass
class Model:
    """A random output layer over a Zipf-like vocabulary."""
    embedding: np.ndarray        # (V, H): the input embedding of each token
    weight: np.ndarray           # (V, H): the output embedding
    bias: np.ndarray             # (V,): log unigram probabilities, so the model knows the frequencies
    unigram: np.ndarray          # (V,): the token distribution of the stream

    def hidden(self, previous: np.ndarray) -> np.ndarray:
        """The hidden state at each position, from the token before it."""
        return np.tanh(self.embedding[previous])


def make_model(vocab=32000, hidden=64, seed=0, dtype=np.float32) -> Model:
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, vocab + 1, dtype=np.float64)
    unigram = (ranks + 2.7) ** -1.1
    unigram /= unigram.sum()
    embedding = rng.standard_normal((vocab, hidden)).astype(dtype)
    weight = (0.5 / np.sqrt(hidden) * rng.standard_normal((vocab, hidden))).astype(dtype)
    return Model(embedding, weight, np.log(unigram).astype(dtype), unigram)


def token_stream(model: Model, n_tokens: int, batch=4096, mean_doc_len=512, seed=1):
    """Batches of ``(previous, target)`` token pairs, ``n_tokens`` targets in all; a
    target that starts a document is ``IGNORE`` (there is no previous token)."""
    rng = np.random.default_rng(seed)
    previous = IGNORE
    for start in range(0, n_tokens, batch):
        n = min(batch, n_tokens - start)
        tokens = rng.choice(len(model.unigram), size=n, p=model.unigram)
        starts = rng.random(n) < 1.0 / mean_doc_len          # a new document begins here
        prev = np.concatenate(([previous], tokens[:-1]))
        prev[starts] = IGNORE
        target = np.where(prev == IGNORE, IGNORE, tokens)
        previous = tokens[-1]
        yield np.where(prev == IGNORE, 0, prev), target


class ProgressBar:
    """A one-line progress bar on stderr."""

    def __init__(self, total: int, width=30, stream=sys.stderr, enabled=True):
        self.total, self.width, self.stream, self.enabled = total, width, stream, enabled
        self.start = time.perf_counter()

    def update(self, done: int, note: str = "") -> None:
        if not self.enabled:
            return
        frac = done / self.total if self.total else 1.0
        bar = "#" * int(frac * self.width)
        rate = done / max(time.perf_counter() - self.start, 1e-9)
        self.stream.write(f"\r[{bar:<{self.width}}] {frac:6.1%} {done}/{self.total} tokens, "
                          f"{rate:,.0f} tokens/s {note}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def evaluate(model: Model, n_tokens: int, *, batch=4096, chunk_size=1024, progress=True):
    """Per-token losses (nats; 0 where the target is ignored) and whether each was scored."""
    losses = np.zeros(n_tokens, dtype=np.float32)
    scored = np.zeros(n_tokens, dtype=bool)
    bar = ProgressBar(n_tokens, enabled=progress)
    done = 0
    for previous, target in token_stream(model, n_tokens, batch=batch):
        n = len(target)
        losses[done:done + n] = fastxent.linear_cross_entropy(
            model.hidden(previous), model.weight, target, model.bias, ignore_index=IGNORE,
            reduction="none", chunk_size=chunk_size)
        scored[done:done + n] = target != IGNORE
        done += n
        bar.update(done, f"ppl {perplexity(losses[:done], scored[:done]):.1f}")
    bar.close()
    return losses, scored


def perplexity(losses, scored) -> float:
    n = int(np.count_nonzero(scored))
    return float(np.exp(np.sum(losses[scored], dtype=np.float64) / n)) if n else float("nan")


def main(argv=None):
    """Scores the stream and prints the summary; returns the per-token losses,
    whether each was scored, the unigram perplexity and the logits held at once
    (bytes), for :func:`plot_perplexity`."""
    p = argparse.ArgumentParser(description="Perplexity over a token stream too long for its logits")
    p.add_argument("--tokens", type=int, default=16384, help="length of the token stream")
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--chunk-size", type=int, default=1024, help="tokens whose logits exist at once")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)

    model = make_model(args.vocab, args.hidden)
    itemsize = model.weight.dtype.itemsize
    held = min(args.chunk_size, args.tokens) * args.vocab * itemsize
    print(f"tokens: {args.tokens}, vocabulary: {args.vocab}, hidden size: {args.hidden}")
    print(f"logits of the whole stream: {args.tokens * args.vocab * itemsize / 1e9:.2f} GB; "
          f"held at once: {held / 1e6:.1f} MB")
    losses, scored = evaluate(model, args.tokens, chunk_size=args.chunk_size,
                              progress=not args.quiet)
    n = int(np.count_nonzero(scored))
    mean = float(np.sum(losses[scored], dtype=np.float64) / n)
    print(f"scored tokens: {n} ({args.tokens - n} ignored at document starts)")
    print(f"mean loss: {mean:.4f} nats/token, perplexity: {perplexity(losses, scored):.2f}")
    entropy = -float(np.sum(model.unigram * np.log(model.unigram)))
    print(f"unigram perplexity of the stream: {np.exp(entropy):.2f}")
    return losses, scored, float(np.exp(entropy)), held, args.vocab * itemsize


# %%
# Perplexity over the stream
# --------------------------
# Left: the perplexity of the tokens scored so far (it settles as the stream
# goes on) and that of each window of 512 tokens, against the stream's unigram
# perplexity.  Right: what the logits of the tokens scored so far would take in
# memory, and what ``linear_cross_entropy`` holds at any moment.


def plot_perplexity(losses, scored, unigram_ppl, held_bytes, row_bytes, window=512):
    """Draws the perplexity over the stream; does nothing where matplotlib is not installed."""
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        return
    position = np.arange(1, len(losses) + 1)
    kept = scored.astype(np.float64)
    running = np.exp(np.cumsum(losses * kept) / np.maximum(np.cumsum(kept), 1))
    starts = np.arange(0, len(losses) - window + 1, window)
    windowed = [perplexity(losses[i:i + window], scored[i:i + window]) for i in starts]

    fig, (ax_ppl, ax_mem) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    ax_ppl.step(starts + window, windowed, where="pre", color="tab:blue", alpha=0.45,
                label=f"each window of {window} tokens")
    ax_ppl.plot(position, running, color="tab:blue", label="tokens scored so far")
    ax_ppl.axhline(unigram_ppl, color="tab:gray", ls="--", label="unigram perplexity")
    ax_ppl.set(xlabel="position in the token stream", ylabel="perplexity",
               title="perplexity (fastxent.linear_cross_entropy)")
    ax_ppl.legend()
    ax_mem.plot(position, position * row_bytes / 1e9, color="tab:orange",
                label="logits of the tokens so far")
    ax_mem.axhline(held_bytes / 1e9, color="tab:blue", label="logits held at once")
    ax_mem.set(xlabel="position in the token stream", ylabel="GB", title="memory for logits")
    ax_mem.legend()
    plt.show()


if __name__ == "__main__":
    plot_perplexity(*main())
