"""torchrun worker: evaluation of saved weights across processes (tests/test_distributed.py)."""
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from matssl_bench.plugins import load_builtin_plugins

load_builtin_plugins()
from matssl_bench.datasets.synthetic import SyntheticMicrographs  # noqa: E402
from matssl_bench.engine import stages  # noqa: E402
from matssl_bench.evaluation import sliding_window  # noqa: E402
from matssl_bench.evaluation.morphology import evaluate_morphology  # noqa: E402

SCALE = dict(patch_size=32, decoder_channels=(8, 8, 8, 8, 8))


def evaluate_all(weights: Path, preview: Path) -> dict:
    data = SyntheticMicrographs(size=64, train=1, val=1, test=5, unlabeled=0)
    metric = dict(num_classes=data.num_classes, class_names=list(data.classes))
    clean = stages.evaluate(weights, data, 'test', 'resnet18', SCALE,
                            dict(metric, convention='clean'), preview_path=preview)
    published = stages.evaluate(weights, data, 'test', 'resnet18', SCALE,
                                dict(metric, convention='authors-batch', batch_units=4))
    morphology = evaluate_morphology(weights, data, 'test', 'resnet18', SCALE, [1])
    return dict(clean=clean['images'], clean_miou=clean['mIoU'], published=published['images'],
                morphology=morphology)


if __name__ == '__main__':
    dist.init_process_group('gloo')
    torch.set_num_threads(1)
    slid = []
    original = sliding_window.slide_logits
    sliding_window.slide_logits = lambda *a, **k: slid.append(1) or original(*a, **k)
    out = Path(sys.argv[2])
    result = evaluate_all(Path(sys.argv[1]), out.parent / 'previews.npz')
    counts = [None] * dist.get_world_size()
    dist.all_gather_object(counts, len(slid))
    if dist.get_rank() == 0:
        out.write_text(json.dumps(dict(result, whole_images_per_rank=counts), default=float))
