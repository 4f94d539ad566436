# The idrift pytest options (--idrift-profile, --idrift-baseline, ...) and fixtures live in the package,
# so `pytest benchmarks` and `pytest tests` share one definition.
pytest_plugins = ["idrift.pytest_plugin", "pytester"]  # pytester: tests run pytest itself
