"""`run.dry_run=true`: parameter counts per part, trainable per stage, memory and step-time
estimates for the real 7B models, on a machine that has neither their weights nor a GPU."""

import re

from tests.full.conftest import compose_full
from vlm_sweeps.job import run_job


def test_dry_run_of_the_7b_default_prints_sizes_and_costs(tmp_path, empty_hf_cache, capsys):
    result = run_job(compose_full(["data=llava_v15", "run.dry_run=true"], tmp_path))
    text = capsys.readouterr().out
    assert result.dry_run and result.metrics == {}
    # Llama-2 7B: 6,738.4M with 32,000 rows; +64 rows (pad token, padded to 64) x 4096 x 2
    assert re.search(r"llm +llama +meta-llama/Llama-2-7b-hf +6,738\.9M", text)
    assert re.search(r"encoder +clip +openai/clip-vit-large-patch14-336 +290\.9M +\(576 patches of 1024, 23 of 24", text)
    assert "stage finetune: trains projector, llm: 6,759.9M trainable of 7,050.8M" in text
    assert "batch 128 = 8 micro-batches of 16" in text and "665,298 records (published size)" in text
    for line in ("weights fp32", "gradients fp32", "AdamW states fp32", "activations", "s/step"):
        assert line in text
    hours = float(re.search(r"estimated training time on 8 x A100: ([\d.]+) h", text).group(1))
    assert 4 < hours < 14  # the paper: a controlled 7B run trains in under 9 hours on 8 A100s
    assert not (tmp_path / ".vlm_sweeps" / "runs").exists()


def test_dry_run_lists_every_stage_of_a_two_stage_fused_plan(tmp_path, empty_hf_cache, capsys):
    run_job(compose_full(["encoder=dinosiglip", "optimization=two_stage", "llm=llama2_13b", "run.dry_run=true"],
                         tmp_path))
    text = capsys.readouterr().out
    assert "encoder    dinov2" in text and "encoder    siglip" in text and "fused-gelu-mlp" in text
    assert "stage align: trains projector:" in text and "batch 256 = 16 micro-batches of 16" in text
    assert "stage finetune: trains projector, llm:" in text and "(729 patches" in text
