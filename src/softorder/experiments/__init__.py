"""The paper's benchmarks as configs (``*.yaml`` here), the compare runner, analysis experiments."""
