"""How fast the managed local model is: its ready time and one client's calls per second.

    python bench/local_llm.py [--calls 30] [--max-tokens 96]

Starts ``LocalModelServer`` (llama.cpp on the bundled SmolLM2), times it until ``/v1/models``
answers, then makes sequential chat completions through ``OpenAICompatibleLLM`` with trivia
questions in the prompts learner's templates, and prints one line per figure.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time

from metamesh.learners.prompts.dataset import builtin_trivia
from metamesh.llm.base import GenerateOptions
from metamesh.llm.http import OpenAICompatibleLLM
from metamesh.llm.local import LocalModelServer


async def calls(server: LocalModelServer, n: int, max_tokens: int) -> tuple[float, list[float], list[int]]:
    llm = OpenAICompatibleLLM(server.base_url, server.alias)
    questions = builtin_trivia()
    options = GenerateOptions(temperature=0.2, max_tokens=max_tokens)
    latencies, tokens = [], []
    started = time.perf_counter()
    try:
        for i in range(n):
            q = questions[i % len(questions)]
            done = await llm.generate(
                f"Answer with only the answer.\nQuestion: {q.question}\nAnswer:", options=options
            )
            latencies.append(done.latency_s)
            tokens.append(done.completion_tokens or 0)
    finally:
        await llm.aclose()
    return time.perf_counter() - started, latencies, tokens


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--max-tokens", type=int, default=96)
    args = parser.parse_args()
    started = time.perf_counter()
    with LocalModelServer() as server:
        ready = time.perf_counter() - started
        took, latencies, tokens = asyncio.run(calls(server, args.calls, args.max_tokens))
    out = sys.stdout
    out.write(f"ready in {ready:.2f} s\n")
    out.write(
        f"{args.calls} sequential calls (max_tokens {args.max_tokens}) in {took:.1f} s: "
        f"{args.calls / took:.2f} calls/s, median {statistics.median(latencies) * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms, {statistics.mean(tokens):.1f} tokens/answer\n"
    )


if __name__ == "__main__":
    main()
