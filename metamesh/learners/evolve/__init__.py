"""Federated prompt evolution (seed 003's ACLA): prompts that rewrite themselves to score better.

``genome`` turns a prompt template into its parts and back; ``simulated``
is an offline LLM whose accuracy responds to those parts and that can
rewrite a prompt when asked; ``evolver`` improves a population of templates
per category with the seed's strategies and adopts a peer's prompt only when
it wins on local samples. No torch.
"""
