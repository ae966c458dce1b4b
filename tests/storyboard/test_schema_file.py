import json
from pathlib import Path

from storyboard.model import Storyboard

ROOT = Path(__file__).resolve().parents[2]


def test_committed_json_schema_matches_the_model():
    """docs/storyboard.schema.json is what editors autocomplete from: regenerate with `sakuga schema`."""
    committed = json.loads((ROOT / "docs" / "storyboard.schema.json").read_text())
    assert committed == Storyboard.model_json_schema()
