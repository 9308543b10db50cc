"""Fit the ranker's default weights across repositories from their older PRs' training pairs.

Each ``search_eval --dump-pairs FILE`` run saves the pairs (relevant minus
non-relevant candidate features) of one repository's *older* PRs, the ones its
evaluation never queries. This pools several repositories, each subsampled to the
same number of pairs so that no single repository decides the defaults, and fits
the pairwise logistic regression of ``ranker.fit_pairs``. Keep at least one
evaluated repository out of the pool and report it apart.

Run: ``python -m benchmarks.learn_defaults pairs-a.npy pairs-b.npy ... [--l2 0.01]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from symbiotic_assets.search.ranker import FEATURES, RankerWeights, fit_pairs


def pooled(files: list[Path], per_repository: int | None = None, seed: int = 0) -> np.ndarray:
    """The pairs of every file, each subsampled to the smallest file's count (or ``per_repository``)."""
    sets = [np.load(f) for f in files]
    for f, s in zip(files, sets, strict=True):
        if s.ndim != 2 or s.shape[1] != len(FEATURES):
            raise ValueError(f"{f}: expected (pairs, {len(FEATURES)}) features, got {s.shape}")
    n = per_repository or min(len(s) for s in sets)
    rng = np.random.default_rng(seed)
    return np.vstack([s[rng.choice(len(s), min(n, len(s)), replace=False)] for s in sets])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pairs", type=Path, nargs="+", help=".npy files from search_eval")
    parser.add_argument("--l2", type=float, default=0.01, help="pull toward the current defaults")
    args = parser.parse_args(argv)
    if len(args.pairs) < 2:
        parser.error("defaults are fitted on two repositories or more, never on one")
    pairs = pooled(args.pairs)
    weights = fit_pairs(pairs, RankerWeights(), l2=args.l2, source="default")
    print(f"{len(pairs)} pairs from {len(args.pairs)} repositories; pairs ordered "
          f"{weights.stats['pairs_ordered_before']} -> {weights.stats['pairs_ordered_after']}")  # fmt: skip
    for f in FEATURES:
        print(f'    "{f}": {weights.weights[f]:.2f},')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
