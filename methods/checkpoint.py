"""Checkpoint: score any ResNet encoder checkpoint as its own row (no SSL stage).

The file is read weights-only and converted by the suite's converter
(``matssl_bench.models.foreign_checkpoints``): mmselfsup/mmpretrain, the MatSSL
authors' MatSSL/MoCoV2/DenseCL, torchvision and MicroNet layouts are recognised from
the keys (``layout='auto'``), the query encoder is taken unless ``copy='momentum'``, and
``key_map`` renames key prefixes first for any other layout
(``key_map={'model.encoder.': 'backbone.'}``). Its sha256 is part of the job key, so
replacing the file reruns the row. In a suite::

    method_cfg = dict(Checkpoint=dict(path='{{ fileDirname }}/byol_ep200.pth', label='BYOL'))
    rows = [dict(finetune='MetalDAM', method='Checkpoint')]
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from matssl_bench.errors import ConfigError, MissingResourceError
from matssl_bench.method_api import PretrainingMethod, convert_state, file_sha256, read_state_dict
from matssl_bench.registry import METHODS


@METHODS.register_module()
class Checkpoint(PretrainingMethod):
    """Any encoder checkpoint file (path=, label=), converted and fine-tuned as is."""

    in_wildcards = False  # needs path=: rows name it, method='*' leaves it out

    def __init__(self, path: Optional[str] = None, label: Optional[str] = None,
                 layout: str = 'auto', copy: str = 'query',
                 key_map: Optional[dict] = None, **hparams):
        if not path:
            raise ConfigError("Checkpoint needs the checkpoint file: method_cfg=dict("
                              "Checkpoint=dict(path='encoder.pth', label='my encoder'))")
        super().__init__(init='random', weights_path=str(path), layout=layout, copy=copy,
                         key_map=dict(key_map or {}), **hparams)
        self.label = label or f'checkpoint {Path(path).name}'  # tables only, not the job key

    def _file(self) -> Path:
        path = Path(self.weights_path)
        if not path.is_file():
            raise MissingResourceError(f'{path}: checkpoint file of method Checkpoint not found '
                                       '(a relative path is read from the working directory; '
                                       "'{{ fileDirname }}/...' in a suite is its folder)")
        return path

    def weights_sha256(self, arch: str) -> dict[str, str]:
        try:
            path = self._file()
        except MissingResourceError:
            return {}  # the run then stops on it, with the message above
        return {path.name: file_sha256(path)}

    def init_label(self, arch: str) -> str:
        return f'checkpoint ({Path(self.weights_path).name})'

    def encoder_state(self, arch: str):
        path = self._file()
        state = read_state_dict(path)
        for old, new in self.hparams['key_map'].items():
            state = {new + k[len(old):] if k.startswith(old) else k: v for k, v in state.items()}
        return convert_state(state, arch, self.hparams['layout'], self.hparams['copy'],
                             source=str(path)).state
