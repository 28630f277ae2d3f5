"""The study: typed config, results store, grid runner, analysis and report."""
