"""pytest options and fixtures for idrift's benchmarks (the `pytest11` entry point; a checkout's conftest.py).

    pytest benchmarks                                    # tiny profile, smoke tier, baselines/tiny-cpu.json
    pytest benchmarks --idrift-profile real --idrift-tier full --idrift-require-real
    pytest benchmarks --idrift-update-baselines          # rewrite the profile's baseline, printing the diff
    pytest benchmarks --idrift-accelerate lossless       # compiled blocks etc.; --idrift-step-cache 0.12 is lossy

A benchmark module declares its claim family; `pytest_generate_tests` parametrizes `idrift_sample`
over every grid point of that family's claims, and `idrift_claim` over the claims themselves. The
sample tests generate and measure (so pytest-xdist can spread them); each claim test then
evaluates, checks the paper's relation and gates against the baseline.
"""

from __future__ import annotations

import os
import warnings

import pytest

from idrift.claims import claims_in_family
from idrift.distributed import assign_worker_gpus, pin_xdist_worker, xdist_group
from idrift.errors import IdriftError
from idrift.evaluate import summary_lines
from idrift.pytest_options import ENV_ERRORS, add_options, parse_shard_option, session_options

_SESSION_KEY = pytest.StashKey["object"]()
_EXIT_KEY = pytest.StashKey["int"]()  # the session's exit status, set when it finishes
_CHECKED_KEY = pytest.StashKey["str | None"]()  # the first bad input met while collecting, or None


def pytest_addoption(parser):
    add_options(parser)  # idrift.pytest_options: the --idrift-* options and their IDRIFT_* defaults


def _session(config):
    if _SESSION_KEY not in config.stash:
        from idrift.session import BenchmarkSession

        options = session_options(config)
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        if worker and options.fresh:
            options.fresh = False  # only the controller may wipe the store (pytest_configure below)
        config.stash[_SESSION_KEY] = BenchmarkSession(options)
    return config.stash[_SESSION_KEY]


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    # `pytest -n N` (pytest-xdist): --dist loadgroup unless --dist is given, so that the samples of one
    # trajectory run (and, with an offload memory mode, of one backbone) stay on one worker (their
    # xdist_group marks, below).
    if getattr(config.option, "numprocesses", None) and getattr(config.option, "dist", "no") == "no":
        config.option.dist = "loadgroup"
    if ENV_ERRORS:  # IDRIFT_BATCH_SIZE=abc, IDRIFT_REQUIRE_REAL=maybe, IDRIFT_PROFILE=nonsense: one line
        raise pytest.UsageError(ENV_ERRORS[0])
    try:
        # a bad i/n: one line, before anything runs
        parse_shard_option(config.getoption("--idrift-shard", default=None))
    except IdriftError as exc:
        raise pytest.UsageError(str(exc)) from exc
    if config.getoption("--idrift-update-baselines", default=False) and (
            getattr(config.option, "numprocesses", None) or config.getoption("--idrift-shard", default=None)):
        raise pytest.UsageError("--idrift-update-baselines needs every sample in one process: drop -n and "
                                "--idrift-shard (or run it on a merged store: --idrift-store MERGED)")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    # xdist workers parse the original command line, not the controller's options: pass the --dist
    # chosen above on, so that they tag test ids with their xdist_group as an explicit --dist loadgroup does.
    node.workerinput["idrift_dist"] = node.config.option.dist


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    if not config.pluginmanager.has_plugin("idrift-skips"):  # every skip's reason in the default output
        from idrift import skip_summary

        config.pluginmanager.register(skip_summary, "idrift-skips")
    try:
        if os.environ.get("PYTEST_XDIST_WORKER"):
            pin_xdist_worker()  # gwK -> GPU K mod count: checks (and where needed makes) the pin below
        else:  # the controller, after xdist turned -n into gateway specs and before it starts the workers
            assign_worker_gpus(config.option)  # each worker starts with its GPU in CUDA_VISIBLE_DEVICES
    except IdriftError as exc:
        raise pytest.UsageError(str(exc)) from exc
    if getattr(config, "workerinput", {}).get("idrift_dist") == "loadgroup":
        config.option.loadgroup = True  # the worker-side flag xdist derives from --dist loadgroup
    if _acceleration_requested(config):
        try:  # a bad value (from an env var), a lossy baseline update, lossy on a CPU, a batch size < 1: one line
            _session(config).check_acceleration()
        except IdriftError as exc:
            raise pytest.UsageError(str(exc)) from None
    if config.getoption("--idrift-profile", default="tiny") == "real" and not os.environ.get("PYTEST_XDIST_WORKER"):
        try:  # every missing or malformed weight in one message, before collection builds anything
            _session(config).check_real_weights()
        except IdriftError as exc:
            raise pytest.UsageError(str(exc)) from None
    if config.getoption("--idrift-fresh", default=False) and not os.environ.get("PYTEST_XDIST_WORKER"):
        _session(config).wipe_store()  # once, before any worker starts; builds no model


def _check_inputs(config) -> bool:
    """idrift.checks.check_inputs once per session (the weights were checked in pytest_configure).
    False when an input is bad: its message is kept for pytest_collection_modifyitems, which stops the
    session with it (a UsageError raised while a module is collected is only that module's error)."""
    if _CHECKED_KEY not in config.stash:
        from idrift.checks import check_inputs

        config.stash[_CHECKED_KEY] = None
        try:
            check_inputs(_session(config), weights=False)
        except IdriftError as exc:
            config.stash[_CHECKED_KEY] = str(exc)
    return config.stash[_CHECKED_KEY] is None


def _bad_input(config, exc: IdriftError) -> None:
    if config.stash.get(_CHECKED_KEY, None) is None:
        config.stash[_CHECKED_KEY] = str(exc)


def _acceleration_requested(config) -> bool:
    return (config.getoption("--idrift-accelerate", default="eager") != "eager"
            or config.getoption("--idrift-step-cache", default=None) is not None
            or config.getoption("--idrift-memory", default="off") != "off"
            or config.getoption("--idrift-allow-lossy-baselines", default=False)
            or config.getoption("--idrift-batch-size", default=1) != 1  # a bad size: checked by SessionOptions
            or config.getoption("--idrift-rounds", default=None) is not None
            or config.getoption("--idrift-warmup-rounds", default=None) is not None)


def _family(item) -> str | None:
    return getattr(getattr(item, "module", None), "CLAIM_FAMILY", None)


SHARD_SKIP = ("--idrift-shard: this job runs only its shard's samples; judge the claims on the merged store "
              "(`idrift merge`, then --idrift-store MERGED)")
XDIST_TIMED_SKIP = ("timed claims are measured in one process (pytest-benchmark turns itself off under "
                    "pytest-xdist, and a speed-up needs both arms in one session): run `pytest "
                    "benchmarks/test_latency.py benchmarks/test_speed.py` without -n")


def _timed(item) -> bool:
    """Whether the item belongs to a family of timed claims (those that measure `latency`)."""
    family = _family(item)
    return family is not None and any("latency" in claim.metrics for claim in claims_in_family(family))


@pytest.hookimpl(trylast=True)  # after xdist has tagged the test ids with their group
def pytest_collection_modifyitems(config, items):
    if config.stash.get(_CHECKED_KEY, None):  # a bad baseline, manifest, store...: one line, before any sample
        raise pytest.UsageError(config.stash[_CHECKED_KEY])
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if getattr(config.option, "loadgroup", False):  # an xdist worker under --dist loadgroup
        _check_xdist_groups(items)
    sharded = config.getoption("--idrift-shard", default=None)
    for item in items:
        if sharded and _family(item) and "idrift_sample" not in item.fixturenames:
            item.add_marker(pytest.mark.skip(reason=SHARD_SKIP))  # claims (and latency) need the whole grid
        elif worker and _timed(item):
            item.add_marker(pytest.mark.skip(reason=XDIST_TIMED_SKIP))
    if worker:
        # Claim tests last (a stable sort): a claim generates whatever samples are missing, so run early
        # it would duplicate the work that the sample tests spread over the workers.
        items.sort(key=lambda item: bool(_family(item)) and "idrift_claim" in item.fixturenames)


def _check_xdist_groups(items) -> None:
    grouped = [item for item in items if item.get_closest_marker("xdist_group")]
    if grouped and "@" not in grouped[0].nodeid.rpartition("]")[2]:
        from importlib.metadata import version

        warnings.warn(pytest.PytestWarning(
            f"--dist loadgroup has no effect with pytest {pytest.__version__} and pytest-xdist "
            f"{version('pytest-xdist')} "
            "(pytest-dev/pytest-xdist#1386: xdist cannot tag the test ids with their xdist_group any more), so the "
            "samples of one trajectory run or backbone are spread over the workers one by one. Results are still "
            "right (a sample found in the store is not generated again) but work may be repeated: use pytest<9.2."))


def pytest_generate_tests(metafunc):
    family = getattr(metafunc.module, "CLAIM_FAMILY", None)
    if family is None:
        return
    if not _check_inputs(metafunc.config):  # collecting the samples opens the store: check everything first
        return
    claims = claims_in_family(family)
    if "idrift_claim" in metafunc.fixturenames:
        metafunc.parametrize("idrift_claim", claims, ids=[c.id for c in claims])
    if "idrift_sample" in metafunc.fixturenames:
        # Grid points, not RunSpecs: collection must not build models. xdist_group keeps the samples
        # that one trajectory run serves on one worker (`--dist loadgroup`; idrift.distributed.xdist_group).
        session = _session(metafunc.config)
        points, seen = [], {}
        for claim in claims:
            try:
                specs = session.specs(claim)
            except IdriftError as exc:
                _bad_input(metafunc.config, exc)
                return
            for spec in specs:  # the same sample may serve several claims: measure what each needs
                seen.setdefault(spec.key, (spec, set()))[1].update(claim.metrics)
        for spec, metrics in seen.values():
            group = pytest.mark.xdist_group(xdist_group(spec, session.options.memory))
            points.append(pytest.param((spec, tuple(sorted(metrics))), marks=group,
                                       id=f"{spec.config_label}|{spec.sample_label}"))
        metafunc.parametrize("idrift_sample", points)


@pytest.fixture(scope="session")
def idrift_session(request):
    return _session(request.config)


def run_sample(session, sample) -> None:
    """Generate and measure one grid point (reused from the store when already done)."""
    spec, metrics = sample
    [record] = session.runner.ensure([spec], metrics, progress=False)
    if record["status"] != "ok":
        pytest.fail(f"sample {spec.config_label} {spec.sample_label} failed: {record['error']}", pytrace=False)


SHARED_ARM_SKIP = ("timed earlier in this session by a claim that shares the arm (latency and fast_paths share "
                   "their eager arms): the rounds stored with its sample serve this claim too")


def benchmark_arm(session, benchmark, arm) -> None:
    """A timed arm's test: its rounds through pytest-benchmark (BenchmarkSession.time_arm), so that its JSON
    and comparisons see them. Skipped, with the reason, where this device cannot take the arm's path, and
    where the arm's sample was timed earlier in this session (the session times a spec once)."""
    reason = session.plan_reason(arm.acceleration)
    if reason is not None:
        pytest.skip(f"{reason}; run on a GPU: pytest benchmarks/test_speed.py --idrift-profile synthetic")
    if session.is_timed(arm):
        pytest.skip(SHARED_ARM_SKIP)
    session.time_arm(arm, benchmark)


def check_claim(session, claim, request) -> None:
    """Evaluate a claim, word its expectations on this profile (idrift.verdicts), gate it against the
    baseline. FAIL fails the test; INCONCLUSIVE passes unless --idrift-strict; a claim that is NOT
    JUDGEABLE in every part is skipped (failed under --idrift-require-real)."""
    from idrift import verdicts as words
    from idrift.evaluate import claim_line

    result = session.run_claim(claim)
    outcomes = session.outcomes[claim.id]
    strict, require_real = session.options.strict, session.options.require_real
    failures = [o.line(claim.id) for o in outcomes if o.status == words.FAIL]
    inconclusive = [o.line(claim.id) for o in outcomes if o.status == words.INCONCLUSIVE]
    skips = [o for o in outcomes if o.status == words.NOT_JUDGEABLE]
    verdicts = [] if session.options.update_baselines else session.gate(result)
    failures += [v.message() for v in verdicts if v.word == words.FAIL]
    inconclusive += [v.message() for v in verdicts if v.word == words.INCONCLUSIVE]
    notes = session.provenance_notes() if verdicts else []
    line = claim_line(claim, outcomes, session.options.tier, require_real)
    request.node.user_properties.append(("idrift_figures", result.figures))
    request.node.user_properties.append(("idrift_verdict", line))
    request.node.user_properties.append(("idrift_outcomes", summary_lines(claim.id, outcomes, session.options.tier,
                                                                          require_real)))  # for -n
    if strict and inconclusive:
        failures += ["--idrift-strict: INCONCLUSIVE counts as a failure"] + inconclusive
    if failures:
        pytest.fail("\n".join([line] + failures + [f"provenance: {n}" for n in notes]), pytrace=False)
    if notes:  # a passing comparison with a baseline from another setup must say so too
        import warnings

        warnings.warn(pytest.PytestWarning("\n".join(
            [f"idrift: baseline {session.baseline.path} was made on another setup; "
             "the comparison is not like for like:"]
            + [f"provenance: {n}" for n in notes])), stacklevel=2)
    if skips and len(skips) == len(outcomes) or (skips and require_real):
        reason = f"{claim.id}: {skips[0].reason}"
        if require_real:
            pytest.fail(f"--idrift-require-real: {reason}", pytrace=False)
        pytest.skip(reason)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    session = config.stash.get(_SESSION_KEY, None)
    if session is None or not session.results:
        # pytest -n: the claims were judged in the workers
        _workers_summary(terminalreporter, session.acceleration_line() if session is not None else None)
        return
    write = terminalreporter.write_line
    terminalreporter.section("idrift claims")
    write(f"profile {session.profile}, tier {session.options.tier}, store {session.store.path}")
    acceleration = session.acceleration_line()
    if acceleration:  # a lossy (or lossless) run is visibly labelled
        write(acceleration)
    for claim_id, outcomes in session.outcomes.items():
        for line in summary_lines(claim_id, outcomes, session.options.tier, session.options.require_real):
            write(line)
    if session.options.update_baselines:
        from idrift.baselines.update import update_baseline

        for line in update_baseline(session):
            write(line)


def claims_json(session) -> dict:
    """Each judged claim as JSON: its word and parts (idrift.verdicts), every figure with its interval
    (idrift.stats.Figure), the gate's word per baseline figure, and the run's profile and baseline."""
    from idrift.evaluate import claim_verdict

    claims = {}
    for claim_id, result in session.results.items():
        outcomes = session.outcomes.get(claim_id, [])
        word, parts, _ = claim_verdict(result.claim, outcomes, None, session.options.require_real)
        figures = {}
        for metric, value in sorted(result.figures.items()):
            figure = result.intervals.get(metric)
            figures[metric] = figure.as_dict() if figure is not None else {"value": value}
        claims[claim_id] = {
            "verdict": word, "parts": parts, "figures": figures,
            "expectations": [{"metric": o.expect.metric, "verdict": o.status, "measured": o.measured,
                              "reason": o.reason} for o in outcomes],
            "gate": {v.metric: v.word for v in session.verdicts.get(claim_id, [])},
        }
    return {"profile": session.profile, "tier": session.options.tier,
            "baseline": session.options.baseline or None, "claims": claims}


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_json(config, benchmarks, output_json):
    """--benchmark-json carries the claims: `idrift` at the top (every claim's ID_sim, LPIPS, latency...
    figures with intervals and verdict words), and each idrift benchmark's `extra_info` the same claims
    (`idrift_claims`) and its arm's own figure with its gate word (`idrift_figure`)."""
    session = config.stash.get(_SESSION_KEY, None)
    if session is None or not session.results:
        return
    import json

    doc = json.loads(json.dumps(claims_json(session), default=str, allow_nan=False))
    output_json["idrift"] = doc
    latency = doc["claims"].get("latency")
    for bench in output_json.get("benchmarks", []):
        info = bench.setdefault("extra_info", {})
        arm = info.get("idrift_arm")
        if arm is None:
            continue
        info["idrift_claims"] = doc["claims"]
        figure = (latency or {}).get("figures", {}).get(f"latency_s[{arm}]")
        if figure is not None:
            info["idrift_figure"] = {"metric": f"latency_s[{arm}]", **figure,
                                     "gate": latency["gate"].get(f"latency_s[{arm}]")}


def pytest_sessionfinish(session, exitstatus):
    """Remember how the session ended: only a session that ran to its end marks its run finished."""
    session.config.stash[_EXIT_KEY] = exitstatus


def pytest_unconfigure(config):
    """Stamp this process's run finished in the store (only when it opened one and was not interrupted):
    an unfinished run in the store then means an interrupted one, as it does for `idrift run`."""
    session = config.stash.get(_SESSION_KEY, None)
    if session is not None and "store" in session.__dict__:
        interrupted = config.stash.get(_EXIT_KEY, pytest.ExitCode.INTERRUPTED) in (
            pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR)
        try:
            if not interrupted:
                session.store.finish_run()
            session.store.close()
        except IdriftError as exc:  # e.g. the disk filled up: say so, the samples are kept
            warnings.warn(pytest.PytestWarning(f"idrift: the run could not be marked finished: {exc}"))


def _workers_summary(terminalreporter, acceleration: str | None) -> None:
    lines = []
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) == "call":
                lines += [line for name, value in report.user_properties if name == "idrift_outcomes" for line in value]
    if lines:
        terminalreporter.section("idrift claims")
        if acceleration:
            terminalreporter.write_line(acceleration)
        for line in lines:
            terminalreporter.write_line(line)
