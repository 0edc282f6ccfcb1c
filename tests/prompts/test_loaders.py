import json
from pathlib import Path

import pytest

from metamesh.errors import ConfigError
from metamesh.learners.prompts.dataset import load_dataset, question_stream
from metamesh.llm.simulated import load_profile


def test_user_datasets_in_jsonl_and_csv(tmp_path: Path) -> None:
    jsonl = tmp_path / "q.jsonl"
    jsonl.write_text(
        json.dumps({"question": "2+2?", "answer": "4", "category": "Math", "aliases": ["four"]}) + "\n"
    )
    [q] = load_dataset(jsonl)
    assert (q.category, q.aliases) == ("math", ("four",))
    csv = tmp_path / "q.csv"
    csv.write_text(
        "question,answer,category,aliases\nCapital of Peru?,Lima,geography,Ciudad de los Reyes|LIM\n"
    )
    [q] = load_dataset(csv)
    assert q.answer == "Lima" and q.aliases == ("Ciudad de los Reyes", "LIM")
    stream = question_stream([q], weights={"geography": 1.0}, seed=1)
    assert next(stream) is q


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.jsonl", "{not json}\n", "line 1 is not JSON"),
        ("empty.jsonl", "\n", "no questions"),
        ("missing.csv", "question,answer\nx,y\n", "lacks 'category'"),
        ("blank.jsonl", json.dumps({"question": "", "answer": "a", "category": "c"}) + "\n", "empty"),
    ],
)
def test_bad_datasets_name_the_file_and_line(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_dataset(path)


def test_profiles_are_validated(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"math": {"direct": 0.2, "reasoning": 0.95}}))
    assert load_profile(good)["math"]["reasoning"] == 0.95
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"math": {"telepathy": 0.5}}))
    with pytest.raises(ConfigError, match="must map cues"):
        load_profile(bad)
    bad.write_text(json.dumps({"math": {"direct": 1.5}}))
    with pytest.raises(ConfigError, match="not a probability"):
        load_profile(bad)
