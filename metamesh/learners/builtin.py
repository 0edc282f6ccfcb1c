"""The built-in learners' builders, one per name of the ``metamesh.learners`` entry-point group.

Each takes the node's :class:`~metamesh.node.config.NodeConfig` and returns a
learner, importing only what that learner needs (torch only for experts and
braid). pyproject.toml registers them; a learner from another distribution
registers the same way (see docs/library.md).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import random
from typing import TYPE_CHECKING

from metamesh.errors import ConfigError
from metamesh.node.config import NodeConfig
from metamesh.node.learner import Learner

if TYPE_CHECKING:
    from metamesh.learners.experts.node_learner import ExpertNodeConfig
    from metamesh.learners.experts.privacy import PrivacyConfig

__all__ = ["braid", "evolve", "experts", "node_seed", "none", "parse_weights", "prompts"]


def none(config: NodeConfig) -> None:
    """No learner (``--learner none``): the node relays and serves its domains' messages only."""
    return None


def parse_weights(text: str, categories: list[str]) -> dict[str, float]:
    """``math=0.4,art=0.4`` -> weights; categories not named get what is left, shared evenly."""
    if not text:
        return dict.fromkeys(categories, 1.0)
    weights: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        try:
            weight = float(value)
        except ValueError as exc:
            raise ConfigError(f"--weights: {part!r} is not CATEGORY=NUMBER") from exc
        if not sep or not 0 <= weight < float("inf"):
            raise ConfigError(f"--weights: {part!r} is not CATEGORY=NUMBER (a number >= 0)")
        if name not in categories:
            raise ConfigError(
                f"--weights: unknown category {name!r}; the questions have: {', '.join(categories)}"
            )
        weights[name] = weight
    rest = [c for c in categories if c not in weights]
    left = max(0.0, 1.0 - sum(weights.values()))
    for c in rest:
        weights[c] = left / len(rest) if rest else 0.0
    return weights


def prompts(config: NodeConfig) -> Learner:
    """The prompt-strategy learner (``--learner prompts``): which prompt works best per category."""
    from metamesh.learners.prompts.dataset import by_category, question_stream, questions_for
    from metamesh.learners.prompts.learner import PromptLearner, PromptLearnerConfig
    from metamesh.llm.spec import parse_llm_spec

    questions = questions_for(config.dataset)
    pools = by_category(questions)
    categories = sorted(pools)
    # A fixed held-out set per category, the same on every node, never learned from.
    picker = random.Random(12345)
    held_out = [
        q for c in categories for q in picker.sample(pools[c], min(config.eval_size, len(pools[c]) // 3))
    ]
    held = {q.id for q in held_out}
    train = [q for q in questions if q.id not in held]
    weights = parse_weights(config.weights, categories)
    llm = parse_llm_spec(config.llm, questions=questions, seed=config.random_seed)
    learner_config = PromptLearnerConfig(
        federated=config.arm == "federated",
        random_policy=config.arm == "random",
        seed=config.random_seed,
        drift_at=config.drift_at,
    )
    return PromptLearner(
        llm,
        question_stream(train, weights=weights, seed=config.random_seed),
        config=learner_config,
        categories=categories,
        eval_questions=held_out,
        eval_every=config.eval_every,
        max_episodes=config.episodes,
    )


def evolve(config: NodeConfig) -> Learner:
    """The evolving-prompts learner (``--learner evolve``): prompts that rewrite themselves."""
    from metamesh.learners.evolve.evolver import EvolveConfig
    from metamesh.learners.evolve.learner import EvolveLearner
    from metamesh.learners.evolve.simulated import EvolvingLLM
    from metamesh.learners.prompts.dataset import by_category, questions_for
    from metamesh.llm.spec import parse_llm_spec

    questions = questions_for(config.dataset)
    pools = by_category(questions)
    picker = random.Random(12345)  # the same held-out questions on every node, never evolved on
    held_out = [
        q for c in sorted(pools) for q in picker.sample(pools[c], min(config.eval_size, len(pools[c]) // 3))
    ]
    held = {q.id for q in held_out}
    # Each node evolves on its own share of the rest, as peers with their own data would.
    rest = [q for q in questions if q.id not in held]
    own = [
        q for i, q in enumerate(rest) if i % max(config.regions, 1) == config.part % max(config.regions, 1)
    ]
    llm = (
        EvolvingLLM(questions, seed=config.random_seed)
        if config.llm == "sim"
        else parse_llm_spec(config.llm, questions=questions, seed=config.random_seed)
    )
    evolve = EvolveConfig(
        seed=config.random_seed, max_iterations=config.episodes or EvolveConfig().max_iterations
    )
    try:
        return EvolveLearner(
            llm, own, categories=sorted(pools), config=evolve, federated=config.arm == "federated",
            held_out=held_out,
        )  # fmt: skip
    except ValueError as exc:
        raise ConfigError(f"evolve learner: {exc}; use fewer --regions or a larger dataset") from exc


def _need_torch(learner: str) -> None:
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            f"the {learner} learner needs torch: pip install 'metamesh[torch]' "
            "(a node without torch can still relay its domain's messages with --learner none)"
        ) from exc


def _privacy(config: NodeConfig) -> PrivacyConfig | None:
    from metamesh.learners.experts.privacy import PrivacyConfig

    if config.dp_clip > 0:
        return PrivacyConfig(
            clip_norm=config.dp_clip, noise_multiplier=config.dp_noise, delta=config.dp_delta
        )
    if config.dp_noise > 0:
        raise ConfigError("--dp-noise needs --dp-clip: noise is a multiple of the clipping norm")
    return None


def _federation(config: NodeConfig, exchange: str, model_name: str) -> ExpertNodeConfig:
    from metamesh.learners.experts.node_learner import ExpertNodeConfig

    if config.arm == "random":
        raise ConfigError(f"the {config.learner} learner has no random arm; use --arm federated or local")
    return ExpertNodeConfig(
        exchange_domain=exchange,
        federated=config.arm == "federated",
        rounds=config.episodes,
        rule=config.aggregation,  # type: ignore[arg-type]
        norm_factor=config.norm_factor or None,
        min_cosine=config.min_cosine if config.min_cosine > -1 else None,
        poison=config.poison,
        model_name=model_name,
    )


def braid(config: NodeConfig) -> Learner:
    """The braid learner (``--learner braid``, torch): which models of a pool to combine, and how."""
    _need_torch("braid")
    from metamesh.learners.braid.fusion import SimulatedBackend
    from metamesh.learners.braid.learner import BraidConfig, BraidLearner
    from metamesh.learners.braid.node_learner import BraidNodeLearner
    from metamesh.learners.braid.pool import load_pool, pool_digest
    from metamesh.learners.braid.tasks import TaskStream, parse_mix

    pool = load_pool(config.pool)
    real = sorted(m.name for m in pool if m.backend != "sim")
    if real:
        raise ConfigError(
            f"--pool: models {real} call real backends; the braid learner runs simulated pools so far "
            "(see docs/braid.md, 'Real pools')"
        )
    try:
        budgets = tuple(float(b) for b in config.budgets.split(","))
    except ValueError as exc:
        raise ConfigError(f"--budgets: {config.budgets!r} is not a comma-separated list of numbers") from exc
    if config.tasks_per_round < 1:
        raise ConfigError("--tasks-per-round must be at least 1")
    exchange = config.share_domain or "braid"
    stream = TaskStream(
        parse_mix(config.task_mix),
        budgets=budgets,
        latency_limit_ms=config.latency_limit,
        seed=config.random_seed,
    )
    learner = BraidLearner(
        pool,
        SimulatedBackend(pool),
        stream,
        BraidConfig(
            budgets=budgets,
            latency_limit_ms=config.latency_limit,
            tasks_per_round=config.tasks_per_round,
            privacy=_privacy(config),
            seed=config.random_seed,
        ),
        domain=exchange,
    )
    return BraidNodeLearner(learner, _federation(config, exchange, f"braid-{pool_digest(pool)}"))


#: Experts learner: share of a local node's training data held out to stop early on.
VALIDATION_SHARE = 0.25
#: Experts learner, private nodes: the training loss past which learning has broken down,
#: as a multiple of the loss of the starting weights.
DIVERGE_FACTOR = 3.0


def node_seed(run: int, domain: str, part: int) -> int:
    """A node's own seed (shuffling, DP noise) from the run's seed, its domain and its part."""
    return int.from_bytes(
        hashlib.sha256(f"metamesh.experts/{run}/{domain}/{part}".encode()).digest()[:8], "little"
    )


def experts(config: NodeConfig) -> Learner:
    """The mixture-of-experts learner (``--learner experts``, torch), federated by weight deltas.

    ``random_seed`` is the run's seed, the same on every node of a run: it draws
    the synthetic data (with the domain and part), the initial weights every
    member starts from, and (with domain and part) the node's own shuffling and
    DP noise. A local node (``--arm local``) holds out ``VALIDATION_SHARE`` of
    its training data and stops early on it; a private federated node falls
    back to training alone when its loss diverges (``DIVERGE_FACTOR``).
    """
    _need_torch("experts")
    from metamesh.learners.experts.data import DOMAINS, hold_out, load_user_data, make_node_data
    from metamesh.learners.experts.learner import ExpertConfig, ExpertLearner
    from metamesh.learners.experts.node_learner import MODEL_NAME, ExpertNodeLearner

    run = config.random_seed
    if config.dataset:
        data = load_user_data(config.dataset, seed=run)
    else:
        domain = config.domain[0] if config.domain else DOMAINS[0]
        data = make_node_data(
            domain, config.part, n_train=config.samples, n_test=256, seed=run, regions=config.regions
        )
    own = node_seed(run, data.domain, config.part)
    validation = None
    if config.arm == "local" and len(data.y_train) >= 2:
        data, x_val, y_val = hold_out(data, VALIDATION_SHARE, own)
        validation = (x_val, y_val)
    privacy = _privacy(config)
    learner = ExpertLearner(
        data,
        ExpertConfig(
            n_experts=config.experts,
            fedprox_mu=config.fedprox_mu,
            frozen=config.frozen,
            privacy=privacy,
            seed=own,
            init_seed=run,
        ),
    )
    federation = _federation(config, config.share_domain or data.domain, MODEL_NAME)
    if privacy is not None:
        federation = dataclasses.replace(federation, diverge_factor=DIVERGE_FACTOR)
    stop = None if validation is None else functools.partial(learner.loss_on, *validation)
    return ExpertNodeLearner(learner, federation, validation_loss=stop)
