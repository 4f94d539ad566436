"""Versioned prompt sets: shipped content, validation of malformed files, content hashes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from idrift.data.prompts import PromptSetError, available_prompt_sets, load_prompt_set


def test_shipped_sets() -> None:
    assert available_prompt_sets() == ["complexity_v1", "eval_v1"]

    ev = load_prompt_set("eval")
    assert (ev.name, ev.version, ev.label) == ("eval", 1, "eval_v1")
    assert ev.ids == ("portrait", "beach", "suit")
    assert all(p.tier is None and "the person" in p.text for p in ev)
    assert "suit" in ev["suit"].text

    cx = load_prompt_set("complexity_v1")
    assert cx.ids[0] == "minimal" and cx.ids[-1] == "style"
    assert [p.tier for p in cx] == [0, 1, 2, 3, 4, 5]
    # Each tier adds constraints: the prompts grow strictly longer from minimal to style.
    lengths = [len(p.text.split()) for p in cx]
    assert lengths == sorted(set(lengths))
    assert "painting" in cx["style"].text


def test_provenance_hash_is_stable_and_tracks_content(tmp_path: Path) -> None:
    ev = load_prompt_set("eval_v1")
    assert load_prompt_set("eval").sha256 == ev.sha256 and len(ev.sha256) == 16
    assert ev.provenance() == {"prompt_set": "eval_v1", "sha256": ev.sha256}

    data = json.loads(Path(ev.path).read_text())
    copy = tmp_path / "eval_copy.json"
    copy.write_text(json.dumps(data, indent=4))  # formatting does not change the hash
    assert load_prompt_set(str(copy)).sha256 == ev.sha256
    data["prompts"][0]["text"] += ", smiling"
    copy.write_text(json.dumps(data))
    assert load_prompt_set(str(copy)).sha256 != ev.sha256


def test_unknown_name_lists_available() -> None:
    with pytest.raises(PromptSetError, match=r"unknown prompt set 'evaluation'; available: complexity_v1, eval_v1"):
        load_prompt_set("evaluation")
    with pytest.raises(PromptSetError, match="does not exist"):
        load_prompt_set("/nonexistent/prompts.json")


def _valid() -> dict:
    return {
        "name": "custom",
        "version": 1,
        "description": "test",
        "prompts": [
            {"id": "minimal", "tier": 0, "text": "A photo of the person"},
            {"id": "scene", "tier": 1, "text": "A photo of the person on a beach"},
        ],
    }


def _break(data: dict, how: str) -> dict:
    p = data["prompts"]
    if how == "duplicate_id":
        p[1]["id"] = "minimal"
    elif how == "empty_text":
        p[1]["text"] = "   "
    elif how == "tier_out_of_range":
        p[1]["tier"] = 6
    elif how == "tiers_out_of_order":
        p[0]["tier"], p[1]["tier"] = 1, 0
    elif how == "tier_missing_on_one":
        del p[1]["tier"]
    elif how == "missing_key":
        del data["version"]
    elif how == "unknown_prompt_key":
        p[0]["negative"] = "blurry"
    elif how == "no_prompts":
        data["prompts"] = []
    return data


@pytest.mark.parametrize(
    "how, message",
    [
        ("duplicate_id", "duplicate prompt id 'minimal'"),
        ("empty_text", r"prompts\[1\] \('scene'\) has empty or missing 'text'"),
        ("tier_out_of_range", r"tier must be an int in 0..5, got 6"),
        ("tiers_out_of_order", r"tier order .* got tiers \[1, 0\]"),
        ("tier_missing_on_one", "either every prompt has a 'tier' or none does"),
        ("missing_key", "missing key\\(s\\) version"),
        ("unknown_prompt_key", "unknown key\\(s\\) negative"),
        ("no_prompts", "'prompts' must be a non-empty list"),
    ],
)
def test_malformed_sets_are_refused(tmp_path: Path, how: str, message: str) -> None:
    path = tmp_path / "custom.json"
    path.write_text(json.dumps(_valid()))
    assert load_prompt_set(str(path)).ids == ("minimal", "scene")
    path.write_text(json.dumps(_break(_valid(), how)))
    with pytest.raises(PromptSetError, match=message) as info:
        load_prompt_set(str(path))
    assert str(path) in str(info.value)  # the message names the file


def test_invalid_json_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"name": "broken",')
    with pytest.raises(PromptSetError, match=rf"{path}.*not valid JSON"):
        load_prompt_set(str(path))
