"""homerun's benchmarks: each figure printed as a ratio against a floor measured in the same run.

The homerun measured is ``tests.harness.stack.private_stack``, the same private stack the
plugin suites run against: one harness, so the benchmark and the tests cannot drift apart.
"""
