"""Package layout (the metadata is in pyproject.toml).

The repository keeps the baseline files and the claim benchmarks at its top level (`baselines/`, `benchmarks/`:
where `idrift bless` writes and `pytest benchmarks` runs in a checkout); a wheel carries them inside the package
as `idrift.baselines.data` (found by idrift.baselines.io.baselines_dir) and `idrift.benchmarks`
(`pytest --pyargs idrift.benchmarks`), so an installed idrift needs no checkout.
"""

from setuptools import find_packages, setup

MAPPED = {"idrift.baselines.data": "baselines", "idrift.benchmarks": "benchmarks"}

setup(
    packages=sorted(find_packages(include=["idrift", "idrift.*"]) + list(MAPPED)),
    package_dir=MAPPED,
    package_data={
        "idrift": ["data/prompts/*.json", "data/identities/*.json"],
        "idrift.baselines.data": ["*.json"],
    },
)
