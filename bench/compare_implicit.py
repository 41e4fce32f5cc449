#!/usr/bin/env python3
"""Run the `implicit` library's ALS and BM25 item-kNN on the split written by
`discreet eval --write-split DIR`, with the same metrics as `discreet eval`:
NDCG@10 (binary gain, ideal = min(10, test size)), Recall@20 (hits / test size),
coverage@10 (distinct items recommended / catalogue), and build seconds.

Interactions are binary (customer bought item); recommendations exclude items bought in
train; the test customers are exactly those listed in test.csv.

When DIR/validation/ exists (written by `discreet eval --write-split`), each library model
is tuned on the validation month first (a small grid, like `discreet eval` does), then
refitted on the full train split with the chosen settings and measured once on the test
month. With --no-tune, the library defaults are used.

usage: python3 bench/compare_implicit.py DIR [--no-tune] [--seed 0]
"""

import argparse
import csv
import os
import time

import numpy as np
import scipy.sparse as sparse


def read_split(directory):
    customers, items = {}, {}
    rows, columns = [], []
    with open(os.path.join(directory, "train.csv"), newline="") as handle:
        for record in csv.DictReader(handle):
            customer = customers.setdefault(record["customer"], len(customers))
            item = items.setdefault(record["item"], len(items))
            rows.append(customer)
            columns.append(item)
    user_items = sparse.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, columns)), shape=(len(customers), len(items))
    )
    user_items.sum_duplicates()
    user_items.data[:] = 1.0
    test = {}
    with open(os.path.join(directory, "test.csv"), newline="") as handle:
        for record in csv.DictReader(handle):
            test.setdefault(customers[record["customer"]], set()).add(items[record["item"]])
    return user_items, test


def evaluate(model, user_items, test):
    customers = np.array(sorted(test), dtype=np.int32)
    identifiers, _scores = model.recommend(
        customers, user_items[customers], N=20, filter_already_liked_items=True
    )
    discounts = 1.0 / np.log2(np.arange(2, 12))
    ndcg_sum = recall_sum = 0.0
    recommended = set()
    for customer, ranked in zip(customers, identifiers):
        relevant = test[int(customer)]
        ranked = [int(item) for item in ranked if item >= 0]
        hits = [item in relevant for item in ranked]
        ideal = discounts[: min(10, len(relevant))].sum()
        ndcg_sum += sum(discount for discount, hit in zip(discounts, hits[:10]) if hit) / ideal
        recall_sum += sum(hits[:20]) / len(relevant)
        recommended.update(ranked[:10])
    count = len(customers)
    return ndcg_sum / count, recall_sum / count, len(recommended) / user_items.shape[1]


def als(factors, regularization, alpha, seed):
    from implicit.als import AlternatingLeastSquares

    return AlternatingLeastSquares(
        factors=factors, iterations=15, regularization=regularization, alpha=alpha, random_state=seed
    )


def bm25(neighbours, k1, b):
    from implicit.nearest_neighbours import BM25Recommender

    return BM25Recommender(K=neighbours, K1=k1, B=b)


ALS_GRID = [
    {"factors": factors, "regularization": regularization, "alpha": alpha}
    for factors in (64, 128)
    for regularization in (0.01, 0.1)
    for alpha in (1.0, 10.0)
]
BM25_GRID = [
    {"neighbours": neighbours, "k1": k1, "b": b}
    for neighbours in (10, 20, 50, 100)
    for k1 in (1.2, 100.0)
    for b in (0.75, 0.8)
]
ALS_DEFAULT = {"factors": 100, "regularization": 0.01, "alpha": 1.0}
BM25_DEFAULT = {"neighbours": 20, "k1": 1.2, "b": 0.75}


def tune(name, make, grid, validation, seed):
    user_items, test = validation
    best, best_settings = -1.0, None
    for settings in grid:
        model = make(**settings, **({"seed": seed} if make is als else {}))
        model.fit(user_items, show_progress=False)
        ndcg, _, _ = evaluate(model, user_items, test)
        print(f"  validation {name} {settings}: NDCG@10 {ndcg:.4f}")
        if ndcg > best:
            best, best_settings = ndcg, settings
    return best_settings


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory")
    parser.add_argument("--no-tune", action="store_true", help="use the library defaults")
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()

    import warnings

    import implicit

    warnings.filterwarnings("ignore", category=implicit.utils.ParameterWarning)
    validation_directory = os.path.join(arguments.directory, "validation")
    tuning = not arguments.no_tune and os.path.exists(os.path.join(validation_directory, "train.csv"))
    als_settings, bm25_settings = ALS_DEFAULT, BM25_DEFAULT
    if tuning:
        validation = read_split(validation_directory)
        print("tuning on the validation month:")
        als_settings = tune("ALS", als, ALS_GRID, validation, arguments.seed)
        bm25_settings = tune("BM25", bm25, BM25_GRID, validation, arguments.seed)

    user_items, test = read_split(arguments.directory)
    print(
        f"implicit {implicit.__version__}: train {user_items.shape[0]} customers x {user_items.shape[1]} items, "
        f"{user_items.nnz} pairs; {len(test)} test customers; settings "
        + ("chosen on the validation month" if tuning else "are the library defaults")
    )
    models = [
        (f"ALS {als_settings}", als(**als_settings, seed=arguments.seed)),
        (f"BM25 item-kNN {bm25_settings}", bm25(**bm25_settings)),
    ]
    print(f"{'model':<70} NDCG@10  Recall@20  coverage@10  build s")
    for name, model in models:
        started = time.perf_counter()
        model.fit(user_items, show_progress=False)
        build_seconds = time.perf_counter() - started
        ndcg, recall, coverage = evaluate(model, user_items, test)
        print(f"{name:<70} {ndcg:7.4f}  {recall:9.4f}  {coverage:11.4f}  {build_seconds:7.2f}")


if __name__ == "__main__":
    main()
