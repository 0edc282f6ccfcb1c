"""The optional thin coordinator: global memory, meta-engine, broadcast."""
