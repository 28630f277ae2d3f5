"""The lowest layer: errors, typed config, results store, atomic I/O, registries, run folders."""
