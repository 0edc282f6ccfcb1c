import pytest

from metamesh.learners.prompts.scoring import is_correct, normalize, reward, score_answer, shaped_reward


@pytest.mark.parametrize(
    ("response", "answer", "aliases", "score"),
    [
        ("Paris", "Paris", (), 1.0),
        ("paris.", "Paris", (), 1.0),
        ("The answer is Paris.", "Paris", (), 0.8),
        ("Parish", "Paris", (), 0.0),
        ("It is in Parisian France", "Paris", (), 0.0),
        ("twenty-one", "21", (), 1.0),
        ("Twenty one", "21", (), 1.0),
        ("one hundred and five", "105", (), 1.0),
        ("It is 300,000 km/s", "300000", (), 0.8),
        ("Einstein", "Albert Einstein", (), 0.5),
        ("Einstein", "Albert Einstein", ("Einstein",), 1.0),
        ("The Pacific", "Pacific Ocean", ("Pacific",), 1.0),
        ("Reykjavík", "Reykjavik", (), 1.0),
        ("THE MOON", "The Moon", (), 1.0),
        ("Berlin", "Paris", (), 0.0),
        ("", "Paris", (), 0.0),
    ],
)
def test_tricky_answers(response: str, answer: str, aliases: tuple[str, ...], score: float) -> None:
    assert score_answer(response, answer, aliases) == score


def test_normalize_drops_articles_and_punctuation() -> None:
    assert normalize("The Brothers Karamazov!") == "brothers karamazov"
    assert normalize("A Tale of Two Cities") == "tale of 2 cities"


def test_the_reward_is_the_accuracy_the_learner_is_judged_by() -> None:
    assert [reward(s) for s in (1.0, 0.8, 0.5, 0.0)] == [9.0, 9.0, -1.0, -1.0]
    assert [shaped_reward(s) for s in (1.0, 0.8, 0.5, 0.0)] == [9.0, 7.0, 4.0, -1.0]
    assert is_correct(0.8) and not is_correct(0.5)
