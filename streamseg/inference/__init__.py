"""Inference: one stage per engine (batching across cameras, engine calls in flight), and the pool that builds them."""
