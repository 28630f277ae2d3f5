"""Pure statistics on NumPy arrays, returning typed result rows (DESIGN.md, layer ``ops/, stats/``).

- :mod:`optiqa.stats.correlation`: the summaries of one (metric, dataset) and, re-exported, the
  themes it is built from: :mod:`~optiqa.stats.coefficients` (SRCC, KRCC, Pearson),
  :mod:`~optiqa.stats.logistic` (VQEG logistic, PLCC, RMSE), :mod:`~optiqa.stats.bootstrap`
  (cluster bootstrap, percentile intervals), :mod:`~optiqa.stats.paired` (two metrics compared).
- :mod:`optiqa.stats.permutation`: exact (all k! orders) and Monte Carlo permutation tests of
  Spearman's rho and Kendall's tau, their attainable values, and the same test for the median
  over an evaluator panel.
- :mod:`optiqa.stats.multiplicity`: families of tests (Holm within a family), the smallest
  attainable p-value of the exact Wilcoxon signed-rank test.
- :mod:`optiqa.stats.replicates`: seeds as a factor (means over seeds, a hierarchical bootstrap
  over seeds and images, the intraclass correlation).
- :mod:`optiqa.stats.headline`: the report's answer-first sentences, generated from the numbers.

Nothing here imports torch or a workflow; rows are dataclasses with ``to_json``/``from_json``.
"""
