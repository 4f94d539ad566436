"""The `idrift` command line behaves as its users expect (issue 22, item 7 and part of 4): IDRIFT_*
variables as for pytest, with the command line winning; --version; a whole --help; repeated notes once."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from idrift.cli import build_parser
from idrift.cli_env import ENV_OF_DEST, apply_env_defaults, env_error
from idrift.commands.compare import row_notes
from idrift.counted import counted

REPO = Path(__file__).resolve().parents[1]


def idrift(*args, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("IDRIFT_")}
    full["PYTHONPATH"] = str(REPO) + os.pathsep + full.get("PYTHONPATH", "")
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "idrift.cli", *map(str, args)], env=full, cwd=cwd,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False)


def parse(argv: list[str], env: dict):
    parser = build_parser()
    errors = apply_env_defaults(parser, env)
    args = parser.parse_args(argv)
    return args, env_error(errors, args.command, argv)


def test_variables_set_run_options_and_the_command_line_wins():
    env = {"IDRIFT_PROFILE": "real", "IDRIFT_TIER": "full", "IDRIFT_REQUIRE_REAL": "yes", "IDRIFT_STRICT": "1",
           "IDRIFT_BATCH_SIZE": "4", "IDRIFT_ACCELERATE": "lossless", "IDRIFT_MEMORY": "offload",
           "IDRIFT_STEP_CACHE": "0.12", "IDRIFT_IDENTITIES": "ids.json"}
    args, error = parse(["run", "--out", "x"], env)
    assert error is None
    assert (args.profile, args.tier, args.require_real, args.strict, args.batch_size, args.accelerate,
            args.memory, args.step_cache, args.identities) == (
        "real", "full", True, True, 4, "lossless", "offload", 0.12, "ids.json")
    args, _ = parse(["run", "--out", "x", "--profile", "tiny", "--tier", "smoke", "--batch-size", "2"], env)
    assert (args.profile, args.tier, args.batch_size) == ("tiny", "smoke", 2)
    args, _ = parse(["run", "--out", "x"], {"IDRIFT_REQUIRE_REAL": "off", "IDRIFT_PROFILE": ""})
    assert args.require_real is False and args.profile == "tiny"


def test_every_variable_is_one_pytest_reads():
    plugin = (REPO / "idrift" / "pytest_options.py").read_text()  # the --idrift-* options and their variables
    for name in ENV_OF_DEST.values():
        assert f'"{name}"' in plugin, name


def test_a_bad_variable_is_one_line_naming_it_unless_the_option_is_given():
    for name, value, says in [("IDRIFT_PROFILE", "bogus", "expected one of tiny, synthetic, real"),
                              ("IDRIFT_BATCH_SIZE", "abc", "expected a whole number >= 1"),
                              ("IDRIFT_STRICT", "maybe", "expected one of 1/true/yes/on"),
                              ("IDRIFT_STEP_CACHE", "-3", "must be a number >= 0")]:
        proc = idrift("run", "--out", "never-made", env={name: value})
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"idrift run: error: environment variable {name}="), lines
        assert says in lines[0]
    assert not Path("never-made").exists()
    _, error = parse(["run", "--out", "x", "--profile", "tiny"], {"IDRIFT_PROFILE": "bogus"})
    assert error is None  # the command line wins, the variable is not read
    _, error = parse(["report", "somewhere"], {"IDRIFT_PROFILE": "bogus"})
    assert error is None  # report has no --profile


def test_idrift_baseline_stands_for_compare_baseline(tmp_path):
    proc = idrift("compare", tmp_path / "no-run")
    assert proc.returncode == 2 and "--baseline" in proc.stderr and "required" in proc.stderr
    proc = idrift("compare", tmp_path / "no-run", env={"IDRIFT_BASELINE": "tiny-cpu"})
    assert proc.returncode == 2 and "required" not in proc.stderr
    assert "run directory" in proc.stderr and "does not exist" in proc.stderr, proc.stderr


def test_version_is_the_installed_package_version():
    proc = idrift("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"idrift {version('idrift')}"


def test_help_is_whole_and_names_the_variables():
    proc = idrift("--help")
    assert proc.returncode == 0
    description = proc.stdout.split("\n\n")[1]
    assert description.rstrip().endswith("."), description
    assert "IDRIFT_" in description and "--version" in proc.stdout
    run_help = idrift("run", "--help").stdout
    for name in ("IDRIFT_PROFILE", "IDRIFT_TIER", "IDRIFT_BATCH_SIZE", "IDRIFT_STRICT"):
        assert f"[env {name}]" in re.sub(r"\s+", " ", run_help), name


@pytest.mark.parametrize("command", ["run", "compare", "report", "bless", "weights", "data",
                                     "identity", "merge"])
def test_every_command_description_is_a_whole_sentence(command):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    assert sub.description and sub.description.rstrip().endswith("."), sub.description


def test_repeated_notes_print_once_with_a_count():
    assert counted(["x", "y", "x", "x"]) == ["x (x3)", "y"]
    rows = [{"claim": f"c{i}", "metric": "id_sim", "status": "INCONCLUSIVE", "notes": "only 3 pairs"}
            for i in range(68)]
    rows.append({"claim": "c", "metric": "lpips", "status": "PASS", "notes": "another GPU"})
    rows.append({"claim": "c", "metric": "x", "status": "FAIL", "notes": "printed in full elsewhere"})
    notes = row_notes(rows)
    assert notes == ["c0 / id_sim, c1 / id_sim, c2 / id_sim, c3 / id_sim, ...: INCONCLUSIVE: only 3 pairs (x68)",
                     "c / lpips: PASS: another GPU"]


def test_latency_rounds_from_the_environment():
    args, error = parse(["run", "--out", "x"], {"IDRIFT_ROUNDS": "4", "IDRIFT_WARMUP_ROUNDS": "0"})
    assert error is None and (args.rounds, args.warmup_rounds) == (4, 0)
    args, _ = parse(["run", "--out", "x", "--rounds", "2"], {"IDRIFT_ROUNDS": "4"})
    assert args.rounds == 2  # the command line wins
    _, error = parse(["run", "--out", "x"], {"IDRIFT_WARMUP_ROUNDS": "-1"})
    assert "IDRIFT_WARMUP_ROUNDS='-1'" in error and "whole number >= 0" in error
    _, error = parse(["run", "--out", "x"], {"IDRIFT_ROUNDS": "0"})
    assert "IDRIFT_ROUNDS='0'" in error and "whole number >= 1" in error
