"""Model parts: vision backbones, projector, LLM, prompt formats, and the VLM that joins them."""
