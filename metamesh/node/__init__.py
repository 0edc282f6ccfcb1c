"""The node runtime: lifecycle, config, state on disk, learners, LLM backends."""
