# The idrift pytest options (--idrift-profile, --idrift-baseline, ...) and fixtures live in the package,
# so `pytest benchmarks` and `pytest tests` share one definition. An installed idrift registers the same
# module through its pytest11 entry point (pyproject.toml), under this same name: pytest then skips it here.
pytest_plugins = ["idrift.pytest_plugin", "pytester"]  # pytester: tests run pytest itself
