import subprocess
import sys

import mmengine.registry as mmreg
import pytest
import torch

from matssl_bench.registry import DATASETS, HOOKS, METHODS, METRICS, MICROGRAPH_SETS, MODELS


def test_registries_are_children_of_mmengine_with_our_scope():
    for ours, parent in ((MODELS, mmreg.MODELS), (DATASETS, mmreg.DATASETS),
                         (METRICS, mmreg.METRICS), (HOOKS, mmreg.HOOKS)):
        assert ours.parent is parent
        assert ours.scope == 'matssl_bench'
    # a parent's module resolves through our registry, ours through the scope prefix
    assert HOOKS.get('CheckpointHook') is mmreg.HOOKS.get('CheckpointHook')
    assert mmreg.MODELS.get('matssl_bench.UNetPlusPlusSegmenter') is MODELS.get('UNetPlusPlusSegmenter')


def test_builtin_plugins_registered():
    assert {'MatSSL', 'MoCoV2', 'DenseCL', 'SupervisedImageNet', 'RandomInit'} <= set(METHODS.module_dict)
    assert 'SyntheticMicrographs' in MICROGRAPH_SETS.module_dict
    assert METHODS.get('MatSSL').needs_pretraining and not METHODS.get('RandomInit').needs_pretraining


def test_mmseg_models_import_after_compat():
    # with mmcv-lite, mmseg.models needs compat's point_sample; its result must match grid_sample
    import mmcv.ops
    import mmseg.models  # noqa: F401
    feats = torch.arange(16.0).view(1, 1, 4, 4)
    points = torch.tensor([[[0.125, 0.125], [0.875, 0.875]]])
    out = mmcv.ops.point_sample(feats, points, align_corners=False)
    assert out.shape == (1, 1, 2)
    assert torch.allclose(out[0, 0], torch.tensor([0.0, 15.0]))


@pytest.mark.slow
def test_import_name_does_not_shadow_hf_datasets(tmp_path):
    # importing the suite must not claim the top-level name `datasets`
    code = 'import sys, matssl_bench.datasets; print("datasets" in sys.modules)'
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == 'False'
