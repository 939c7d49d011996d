"""vlm_sweeps tests (a regular package: some dependencies install a top-level `tests` package)."""
