"""The prompt-strategy learner of seed 000: which prompt makes an LLM answer best, per category.

- ``strategies``: the prompt templates (Direct, Think, Concise, Expert, Format)
- ``scoring``: answer normalisation and the exact / contains / partial score
- ``dataset``: the built-in trivia set and a loader for users' own questions
- ``qlearning``: the Q-table itself, pure: epsilon-greedy choice, updates, merging views
- ``config``: the learner's settings (exploration, sharing, the monitor, baseline arms)
- ``learner``: the node-facing learner that ties them to an LLM and to gossip
"""
