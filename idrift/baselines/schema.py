"""JSON Schema (draft 2020-12) of a baseline file.

A baseline holds, per claim, the numbers a run is compared with: per metric the aggregate, how many
samples it summarises, the tolerance and its direction, and (for paired comparison) the per-sample
values. Provenance says where the numbers came from, so a comparison can flag what differs.

Example (abridged)::

    {"schema_version": 1, "name": "paper", "description": "...", "created": "2026-11-20T12:00:00Z",
     "provenance": {"profile": "paper", "gpu": "NVIDIA RTX PRO 6000 Blackwell", "packages": {},
                    "weights": {}, "seeds": [], "command": "transcribed from the paper"},
     "claims": {"table1_backbone_swap": {"protocol": "28 identities x 3 prompts",
        "metrics": {"speedup": {"aggregate": 5.9, "n": 84, "tolerance": 0.15,
                                "tolerance_kind": "relative", "direction": "higher_is_better",
                                "unit": "x", "hardware_bound": false, "note": "why 15%"}}}}}
"""

from __future__ import annotations

SCHEMA_VERSION = 1

# The claim ids fixed by the lead. An unknown id in a baseline is almost always a typo, which would
# otherwise make the claim silently unchecked; add new claims here.
CLAIM_IDS: tuple[str, ...] = (
    "table1_backbone_swap",
    "table1_dev4_diagnostic",
    "table2_id_sim_by_prompt",
    "figure3_per_identity",
    "figure5_drift",
    "figure5_guidance",
    "figure4_alpha",
    "figures6_7_prompt_complexity",
    "text_identity_competition",  # beyond the paper
    "latency",
    "fast_paths",
)
FAST_PATHS_ID = "fast_paths"  # the acceleration targets: a claim like the others (idrift.claims)
# A scored folder's claims (`idrift score`, idrift.scoring.claims): other methods' images, blessed like a run's.
SCORED_IDS = ("score_methods", "score_drift")
ENTRY_IDS: tuple[str, ...] = (*CLAIM_IDS, *SCORED_IDS)

DIRECTIONS: tuple[str, ...] = ("higher_is_better", "lower_is_better", "equal")
TOLERANCE_KINDS: tuple[str, ...] = ("absolute", "relative")
BASELINE_PROFILES: tuple[str, ...] = ("tiny", "synthetic", "real", "paper")

# e.g. id_sim[schnell-4], id_sim[dev-28|portrait], drift[minimal], speedup, id_sim_delta
METRIC_ID_PATTERN = r"^[a-z][a-z0-9_]*(\[[^\[\]\s]+\])?$"
# "identity|prompt_id|seed|config_label" (RunSpec.sample_label + "|" + RunSpec.config_label)
SAMPLE_KEY_PATTERN = r"^[^|]+\|[^|]+\|-?[0-9]+\|[^|]+$"
# ISO 8601 date or date-time. jsonschema only checks "format" with optional extra packages,
# so the pattern does the checking and "format" documents the intent.
CREATED_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"  # the date
    r"([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?"  # optionally a time: hh:mm, seconds, fraction
    r"(Z|[+-][0-9]{2}:?[0-9]{2})?)?$"  # and the time's zone
)

_METRIC = {
    "type": "object",
    "required": ["aggregate", "n", "tolerance", "tolerance_kind", "direction", "unit", "hardware_bound", "note"],
    # Closed: a misspelt field ("tolerence") must be an error, not a silently ignored key.
    "additionalProperties": False,
    "properties": {
        "aggregate": {"type": "number"},
        # null: the source does not say how many samples (some of the paper's figures).
        "n": {"type": ["integer", "null"], "minimum": 1},
        "tolerance": {"type": "number", "minimum": 0},
        "tolerance_kind": {"enum": list(TOLERANCE_KINDS)},
        "direction": {"enum": list(DIRECTIONS)},
        "unit": {"type": "string"},
        "samples": {
            "type": "object",
            "propertyNames": {"pattern": SAMPLE_KEY_PATTERN},
            "additionalProperties": {"type": "number"},
            "minProperties": 1,
        },
        # Absolute latency: only comparable on the same GPU model.
        "hardware_bound": {"type": "boolean"},
        "note": {"type": "string"},
    },
}

_PROVENANCE = {
    "type": "object",
    "required": ["profile", "gpu", "packages", "weights", "seeds", "command"],
    # Open: runs may record more (onnxruntime providers, dtype, resolution, ...).
    "additionalProperties": True,
    "properties": {
        "profile": {"enum": list(BASELINE_PROFILES)},
        "gpu": {"type": ["string", "null"]},
        "packages": {"type": "object", "additionalProperties": {"type": "string"}},
        "weights": {"type": "object", "additionalProperties": {"type": "string"}},
        "seeds": {"type": "array", "items": {"type": "integer"}},
        "command": {"type": "string"},
    },
}
_CLAIM = {
    "type": "object",
    "required": ["protocol", "metrics"],
    "additionalProperties": False,
    "properties": {
        "protocol": {"type": "string", "minLength": 1},
        # Optional: the run that measured this entry when it is not the file's.
        "provenance": _PROVENANCE,
        "metrics": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": METRIC_ID_PATTERN},
            "additionalProperties": _METRIC,
        },
    },
}


BASELINE_SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://idrift.invalid/schemas/baseline-v1.json",
    "title": "idrift baseline",
    "type": "object",
    "required": ["schema_version", "name", "description", "created", "provenance", "claims"],
    "additionalProperties": False,
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "name": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "created": {"type": "string", "format": "date-time", "pattern": CREATED_PATTERN},
        "provenance": _PROVENANCE,
        "claims": {
            "type": "object",
            "propertyNames": {"enum": list(ENTRY_IDS)},
            "additionalProperties": _CLAIM,
        },
    },
}
