"""vlm_sweeps: ablation sweeps over the design space of vision-language models."""

__version__ = "0.1.0"
