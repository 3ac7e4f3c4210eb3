"""Policy files: the shipped one loads; mistakes are one-line errors with file, line and a suggestion."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.safety.policy import SafetyPolicy, SafetyPolicyError, load_policy
from edgekit.safety.taxonomy import CATEGORIES, HAZARDS


def test_the_shipped_policy_names_every_category() -> None:
    policy = load_policy()
    assert all(getattr(policy.actions, c) is not None for c in CATEGORIES)
    assert policy.action_for("prompt_injection", "context", "warn") == "block"  # layer override
    assert policy.action_for("prompt_injection", "input", "warn") == "escalate"


def test_taxonomy_follows_the_mlcommons_hazard_list() -> None:
    assert list(HAZARDS) == [f"S{i}" for i in range(1, 15)]
    assert HAZARDS["S9"] == "indiscriminate_weapons" and HAZARDS["S14"] == "code_interpreter_abuse"


def test_a_category_left_out_keeps_the_filters_proposal() -> None:
    policy = SafetyPolicy.parse("[actions]\npii = 'block'\n")
    assert policy.action_for("pii", "output", "redact") == "block"
    assert policy.action_for("secrets", "output", "redact") == "redact"


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        ("version = 1\n[actions]\npii = 'redact'\npiii = 'block'\n", 4, "Did you mean 'pii'?"),
        ("[actions]\nviolent_crime = 'block'\n", 2, "Did you mean 'violent_crimes'?"),
        ("[layers.contxt]\npii = 'block'\n", 1, "Did you mean 'context'?"),
        ("[language]\nsuported = ['en']\n", 2, "Did you mean 'supported'?"),
    ],
)
def test_unknown_keys_name_the_line_and_the_closest_key(
    text: str, line: int, needle: str, tmp_path: Path
) -> None:
    path = tmp_path / "safety.toml"
    path.write_text(text)
    with pytest.raises(SafetyPolicyError) as e:
        load_policy(path)
    assert e.value.message.startswith(f"{path}:{line}:")
    assert needle in e.value.hint


@pytest.mark.parametrize(
    "text",
    [
        "[actions]\npii = 'blok'\n",
        "[classifier.thresholds]\nen = 1.5\n",
        "[classifier.thresholds]\nEnglish = 0.5\n",
        "[classifier.thresholds]\nxx = 0.5\n",
        "[classifier]\nthreshold = 0\n",
        "[classifier]\nblock_threshold = 1.2\n",
        "[classifier]\nlanguages = ['english']\n",
        "[language]\nsupported = ['en', 'qq']\n",
        "version = 2\n",
        "[actions\n",
    ],
)
def test_bad_values_are_input_errors(text: str) -> None:
    with pytest.raises(SafetyPolicyError):
        SafetyPolicy.parse(text)


def test_a_hazard_code_as_key_names_its_category() -> None:
    with pytest.raises(SafetyPolicyError) as e:
        SafetyPolicy.parse("[actions]\npii = 'redact'\nS9 = 'block'\n")
    assert e.value.message.startswith("safety.toml:3: actions.S9")
    assert "indiscriminate_weapons" in e.value.hint


def test_a_missing_policy_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(SafetyPolicyError, match="no such safety policy"):
        load_policy(tmp_path / "nope.toml")


def test_a_bad_language_code_says_what_a_code_looks_like() -> None:
    with pytest.raises(SafetyPolicyError) as e:
        SafetyPolicy.parse("[language]\nsupported = ['en', 'english']\n")
    assert "ISO 639-1" in str(e.value.message) + str(e.value.hint)
