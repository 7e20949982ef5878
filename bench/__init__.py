"""homerun's benchmarks: each figure printed as a ratio against a floor measured in the same run."""
