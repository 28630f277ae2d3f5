"""Assessment: correlation statistics, the metric benchmark, published figures, fitting DISTS-style weights."""
