"""The suite schema: one declaration, mirrored by docs/; every shipped suite passes it."""
import inspect
import re

import pytest

from conftest import REPO
from matssl_bench.datasets.folder import Folder
from matssl_bench.errors import ConfigError
from matssl_bench.suite.plan import available_suites, load_suite
from matssl_bench.suite.schema import (FINETUNE_SCALE_KEYS, PRETRAIN_SCALE_KEYS, SUITE_KEYS,
                                       check_scale)


def doc_text(name):
    return (REPO / 'docs' / name).read_text()


def test_docs_document_every_suite_and_scale_key():
    section = doc_text('suite-format.md')
    documented = set(re.findall(r'`([a-z_]+)`', section))
    declared = set(SUITE_KEYS) | set(PRETRAIN_SCALE_KEYS) | set(FINETUNE_SCALE_KEYS)
    assert declared - documented == set()


def test_docs_document_every_folder_option():
    section = doc_text('own-data.md')
    documented = set(re.findall(r'`([a-z_]+)`', section))
    options = set(inspect.signature(Folder.__init__).parameters) - {'self'}
    assert {'images', 'masks', 'unlabeled', 'palette', 'label_map', 'classes'} <= options
    assert options - documented == set()


@pytest.mark.parametrize('name', available_suites())
def test_builtin_suites_validate(name):
    assert load_suite(name).rows


def test_template_validates():
    suite = load_suite(str(REPO / 'examples' / 'my_suite.py'))
    assert suite.finetune_sets.mine.type == 'Folder' and suite.protocol == 'clean'


def test_protocol_keys_are_accepted_and_typos_are_not():
    check_scale('s', dict(epochs=1, batch_size=2, patch_size=32, eval_stride=16, tta='flips',
                          encoder_lr_mult=0.1, augment='strong', balanced_crops=True,
                          downscale=0.5, encoder_mode='full'), 'finetune')
    check_scale('s', dict(epochs=1, batch_size=2, patch_size=32, sync_bn=True), 'pretrain')
    with pytest.raises(ConfigError, match="did you mean 'eval_stride'"):
        check_scale('s', dict(epochs=1, batch_size=2, patch_size=32, eval_strid=16), 'finetune')
    check_scale('s', dict(epochs=1, batch_size=2, patch_size=32, sync_bn=True), 'finetune')
    with pytest.raises(ConfigError, match="views"):  # a pretraining key
        check_scale('s', dict(epochs=1, batch_size=2, patch_size=32, views='device'), 'finetune')
    with pytest.raises(ConfigError, match="views: expected 'workers' or 'device'"):
        check_scale('s', dict(epochs=1, batch_size=2, patch_size=32, views='gpu'), 'pretrain')
    with pytest.raises(ConfigError, match='positive integer'):
        check_scale('s', dict(epochs=0, batch_size=2, patch_size=32), 'pretrain')
