"""The claim benchmarks: `pytest benchmarks` in a checkout, `pytest --pyargs idrift.benchmarks` from a wheel
(setup.py installs this folder as the package idrift.benchmarks)."""
