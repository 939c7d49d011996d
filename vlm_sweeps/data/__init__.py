"""Data: image transforms, LLaVA-format instruction data, the synthetic world, batching."""
