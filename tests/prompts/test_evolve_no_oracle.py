"""Evolution has no oracle: it proposes rewrites through the LLM interface alone, and the
simulated rewriter never sees the answering model's effects."""

import asyncio
import statistics

import pytest

from metamesh.learners.evolve.evolver import META_PROMPT_HEAD, EvolveConfig, PromptEvolver
from metamesh.learners.evolve.genome import STATIC_PROMPT, Genome
from metamesh.learners.evolve.simulated import EFFECTS, EvolvingLLM
from metamesh.learners.prompts.dataset import CATEGORIES, builtin_trivia, by_category
from metamesh.llm.base import Completion, GenerateOptions

#: The effects of another category for each one: a table the rewriter cannot have been written for.
HIDDEN = {cat: EFFECTS[CATEGORIES[(i + 2) % len(CATEGORIES)]] for i, cat in enumerate(CATEGORIES)}


class Hidden:
    """The LLM interface and nothing else: what the evolver talks to holds no table it can read."""

    name = "hidden"

    def __init__(self, seed: int) -> None:
        llm = EvolvingLLM(builtin_trivia(), effects=HIDDEN, seed=seed)
        self.generate = llm.generate  # a bound method, the only way in

    async def aclose(self) -> None:
        return None


def _meta(prompt: str) -> str:
    return (
        f"{META_PROMPT_HEAD}\nRewrite it.\nCurrent prompt:\n{prompt}\nFailing examples:\n- category: math | x"
    )


def test_the_simulated_rewrite_does_not_depend_on_the_effects() -> None:
    qs = builtin_trivia()
    a, b = EvolvingLLM(qs, seed=4), EvolvingLLM(qs, effects=HIDDEN, seed=4)
    assert not hasattr(a.rewriter, "_effects") and vars(a.rewriter).keys() == {"_seed", "rewrites"}

    async def rewrites(llm: EvolvingLLM) -> list[str]:
        prompt, out = STATIC_PROMPT, []
        for _ in range(12):
            prompt = (await llm.generate(_meta(prompt), options=GenerateOptions())).text
            out.append(prompt)
        return out

    same = asyncio.run(rewrites(a))
    assert same == asyncio.run(rewrites(b))
    assert any(Genome.parse(t).free for t in same)  # in its own words, not a canonical template
    assert all("{question}" in t for t in same)


@pytest.mark.timeout(120)
def test_evolution_against_hidden_effects_still_beats_the_static_prompt() -> None:
    pools = by_category(builtin_trivia())

    async def run(category: str, seed: int) -> tuple[float, float, dict[str, float]]:
        held, train = pools[category][:40], pools[category][40:]
        ev = PromptEvolver(Hidden(seed), category, train, config=EvolveConfig(seed=seed))
        assert not any(isinstance(v, EvolvingLLM) for v in vars(ev).values())
        static = await ev.accuracy(held, STATIC_PROMPT)
        while await ev.step():
            pass
        return static, await ev.accuracy(held), ev.credit

    runs = [asyncio.run(run(c, s)) for c in CATEGORIES for s in (0, 1)]
    gains = [evolved - static for static, evolved, _ in runs]
    assert statistics.mean(gains) > 0.15, gains
    assert sum(g > 0 for g in gains) >= len(gains) - 2, gains
    credit = {k: sum(c[k] for _, _, c in runs) for k in runs[0][2]}
    assert sum(credit.values()) > 0 and all(v >= 0 for v in credit.values()), credit


def test_a_rewrite_in_its_own_words_is_kept_and_edited_as_text() -> None:
    free = "Reason it through, then answer.\nThe question is: {question}\nAnswer:"
    g = Genome.parse(free)
    assert g.free and g.render() == free and g.parts == {"reasoning"}
    added = g.with_part("brevity")
    assert added.parts == {"reasoning", "brevity"} and added.render().startswith("Reason it through")
    dropped = added.without_part("reasoning")
    assert dropped.parts == {"brevity"} and "The question is: {question}" in dropped.render()
    shot = g.with_examples([("2+2?", "4")])
    assert "examples" in shot.parts and shot.free and shot.examples == (("2+2?", "4"),)
    assert Genome.parse(Genome(frozenset({"expert"})).render()) == Genome(frozenset({"expert"}))


class _Echo:
    """An LLM whose rewrite is free text: the evolver keeps it verbatim."""

    name = "echo"

    def __init__(self, inner: EvolvingLLM) -> None:
        self.inner = inner

    async def generate(self, prompt: str, *, options: GenerateOptions | None = None) -> Completion:
        if prompt.startswith(META_PROMPT_HEAD):
            return Completion(
                text="Work it out step by step, carefully.\n{question}\nAnswer:", model="echo", latency_s=0.0
            )
        return await self.inner.generate(prompt, options=options)

    async def aclose(self) -> None:
        return None


def test_the_evolver_keeps_an_llms_rewrite_in_its_own_words() -> None:
    qs = builtin_trivia()
    ev = PromptEvolver(
        _Echo(EvolvingLLM(qs, seed=0)), "math", qs, config=EvolveConfig(strategies=("error_analysis",))
    )
    asyncio.run(ev.step())
    assert ev.best.template == "Work it out step by step, carefully.\n{question}\nAnswer:"
    assert ev.best.strategy == "error_analysis" and ev.credit["error_analysis"] > 0.2
