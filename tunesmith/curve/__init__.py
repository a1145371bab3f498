"""Learning curves: train on nested subsets of the training data, evaluate each on the same test items, fit a
saturating curve and say in plain words whether more data (or a larger model) is likely to pay.

    subsets.py   nested, stratified subsets (label/intent where the data has one, else length buckets)
    fit.py       score = a - b·n^(-c) (a monotone fit on fewer points), bootstrap over test items
    verdict.py   rising / flat / too noisy, in the words a user acts on
    plan.py      the points to run, and which fit a --budget-minutes (from the first point's speed)
    checks.py    refuse bad input before any training
    runner.py    train and evaluate each point (the one trainer, the one eval), resumable
    plot.py      score against examples, log scale, CI band, baselines, projection

The curve directory is written and read by `tunesmith.artifacts.curve_dir` alone.
"""
