"""Foreign checkpoints -> the suite's encoder format (torchvision ResNet keys, no ``fc``).

Recognised layouts (after a DataParallel ``module.`` prefix is removed):

- ``matssl-authors``: the MatSSL authors' ``MatSSL.state_dict()``. The ResNet
  is under ``backbone.``; the same tensors appear again under stage aliases
  (``layer1.0.`` = conv1, ``layer1.1.`` = bn1, ``layer1.4.`` = layer1,
  ``layer2.``-``layer4.``), which must equal the backbone's; the gates are
  ``attn_module.gates.<i>`` and the head ``projection_head.layers.<i>``.
- ``mocov2-authors``: their MoCoV2; query ResNet ``backbone.``, momentum copy
  ``key_backbone.``, heads ``projection_head.``/``key_projection_head.``.
- ``densecl-authors``: their DenseCL; query ResNet ``backbone.backbone.``,
  momentum copy ``backbone_momentum.backbone.``, heads ``projection_head_*``.
- ``openmmlab``: mmselfsup/mmpretrain (``state_dict`` with ``backbone.``;
  momentum copy ``encoder_k.module.0.`` or ``momentum_encoder.module.0.``;
  necks, heads and queues are dropped).
- ``torchvision``: plain ResNet keys, e.g. ImageNet or MicroNet files
  (the classifier ``fc.`` is dropped).

The query encoder is converted by default (what the authors' fine-tuning
loads); ``copy='momentum'`` takes the momentum copy. Every conversion checks
that the result fills every tensor of a ResNet of the given (or inferred)
depth; anything else raises EncoderMismatchError naming the file and keys.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Union

import torch
from torch import nn

from matssl_bench.models.encoders import (build_resnet, check_encoder_state, encoder_only, read_state_dict,
                       state_mismatches)
from matssl_bench.errors import EncoderMismatchError
from matssl_bench.fileio.atomic import save_torch_atomic

State = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Layout:
    query: str                      # prefix of the query encoder
    momentum: tuple[str, ...] = ()  # prefixes of a momentum copy, the first present is used
    others: tuple[str, ...] = ()    # other recognised groups, dropped; () with any_other: all
    any_other: bool = False


LAYOUTS = {
    'matssl-authors': Layout('backbone.', others=('attn_module.', 'projection_head.', 'layer1.',
                                                  'layer2.', 'layer3.', 'layer4.')),
    'mocov2-authors': Layout('backbone.', ('key_backbone.',),
                             ('projection_head.', 'key_projection_head.')),
    'densecl-authors': Layout('backbone.backbone.', ('backbone_momentum.backbone.',),
                              ('projection_head_global', 'projection_head_local')),
    'openmmlab': Layout('backbone.', ('encoder_k.module.0.', 'momentum_encoder.module.0.'),
                        any_other=True),
    'torchvision': Layout('', others=('fc.',)),
}

# Stage aliases of the authors' MatSSL (their ``layer1`` is Sequential(conv1, bn1, relu, maxpool, layer1)).
MATSSL_ALIASES = (('layer1.0.', 'conv1.'), ('layer1.1.', 'bn1.'), ('layer1.4.', 'layer1.'),
                  ('layer2.', 'layer2.'), ('layer3.', 'layer3.'), ('layer4.', 'layer4.'))

# Blocks per stage -> depth, for ResNets with basic (False) or bottleneck (True) blocks.
_DEPTHS = {((2, 2, 2, 2), False): 'resnet18', ((3, 4, 6, 3), False): 'resnet34',
           ((3, 4, 6, 3), True): 'resnet50', ((3, 4, 23, 3), True): 'resnet101',
           ((3, 8, 36, 3), True): 'resnet152'}


@dataclass
class Conversion:
    state: State                 # the encoder, torchvision keys, no classifier
    arch: str
    layout: str
    prefix: str                  # where the encoder was found in the source
    dropped: dict[str, int] = field(default_factory=dict)  # top-level group -> tensors dropped


def strip_module(state: Mapping[str, torch.Tensor]) -> State:
    """Remove DataParallel's ``module.`` prefix when every key carries it."""
    if state and all(k.startswith('module.') for k in state):
        return {k[len('module.'):]: v for k, v in state.items()}
    return dict(state)


def detect_layout(state: Mapping[str, torch.Tensor]) -> Optional[str]:
    keys = list(state)

    def has(prefix):
        return any(k.startswith(prefix) for k in keys)

    if has('attn_module.gates.'):
        return 'matssl-authors'
    if has('backbone.backbone.') or has('backbone_momentum.'):
        return 'densecl-authors'
    if has('key_backbone.'):
        return 'mocov2-authors'
    if has('backbone.'):
        return 'openmmlab'
    if 'conv1.weight' in state:
        return 'torchvision'
    return None


def infer_arch(encoder: Mapping[str, torch.Tensor]) -> Optional[str]:
    """ResNet depth from an encoder state dict's block counts, or None."""
    blocks = tuple(len({k.split('.')[1] for k in encoder if k.startswith(f'layer{i}.')})
                   for i in range(1, 5))
    return _DEPTHS.get((blocks, 'layer1.0.conv3.weight' in encoder))


def _check_matssl_aliases(state: State, source: str) -> None:
    """Each alias tensor must be the backbone tensor it duplicates."""
    for key, value in state.items():
        for alias, target in MATSSL_ALIASES:
            if key.startswith(alias):
                original = 'backbone.' + target + key[len(alias):]
                if original not in state:
                    raise EncoderMismatchError(f'{source}: stage alias {key} has no backbone tensor '
                                               f'{original}')
                if not torch.equal(state[original], value):
                    raise EncoderMismatchError(f'{source}: stage alias {key} differs from {original}')
                break


def convert_state(state: Mapping[str, torch.Tensor], arch: Optional[str] = None,
                  layout: str = 'auto', copy: str = 'query',
                  source: str = 'checkpoint') -> Conversion:
    """Extract and verify the ResNet encoder of a foreign state dict."""
    state = strip_module(state)
    if layout == 'auto':
        layout = detect_layout(state)
        if layout is None:
            raise EncoderMismatchError(f'{source}: unrecognised checkpoint layout '
                                       f'(first keys: {", ".join(list(state)[:5])})')
    if layout not in LAYOUTS:
        raise ValueError(f'layout must be auto or one of {sorted(LAYOUTS)}, got {layout!r}')
    spec = LAYOUTS[layout]
    if copy == 'query':
        prefix = spec.query
    elif copy == 'momentum':
        found = [p for p in spec.momentum if any(k.startswith(p) for k in state)]
        if not found:
            raise EncoderMismatchError(f'{source}: no momentum encoder in this {layout} checkpoint')
        prefix = found[0]
    else:
        raise ValueError(f"copy must be 'query' or 'momentum', got {copy!r}")
    if layout == 'matssl-authors':
        _check_matssl_aliases(state, source)

    if prefix:
        encoder = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        rest = [k for k in state if not k.startswith(prefix)]
    else:  # plain ResNet: everything but the classifier must be encoder
        encoder = encoder_only(state)
        rest = [k for k in state if k not in encoder]
    known = spec.others + spec.momentum + ((spec.query,) if spec.query else ())
    strange = [k for k in rest if not (spec.any_other or k.startswith(known))]
    if strange:
        raise EncoderMismatchError(f'{source}: {len(strange)} keys outside the encoder that a '
                                   f'{layout} checkpoint does not have (e.g. {", ".join(strange[:3])})')
    encoder = encoder_only(encoder)
    arch = arch or infer_arch(encoder)
    if arch is None:
        raise EncoderMismatchError(f'{source}: cannot tell the ResNet depth from the keys under '
                                   f'{prefix!r}; pass the architecture')
    with torch.device('meta'):  # shapes only
        reference = build_resnet(arch)
    check_encoder_state(reference, encoder, f'{source} ({layout}, encoder under {prefix!r})')
    dropped: dict[str, int] = {}
    for k in rest:
        group = k.split('.', 1)[0]
        dropped[group] = dropped.get(group, 0) + 1
    return Conversion({k: v.detach().clone().contiguous() for k, v in encoder.items()},
                      arch, layout, prefix, dropped)


def convert_file(path: Union[str, os.PathLike], arch: Optional[str] = None, layout: str = 'auto',
                 copy: str = 'query') -> Conversion:
    path = Path(path)
    return convert_state(read_state_dict(path), arch, layout, copy, source=str(path))


def write_encoder(conversion: Conversion, dst: Union[str, os.PathLike]) -> Path:
    """Write the encoder state dict atomically (a plain dict of tensors)."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    save_torch_atomic(dst, conversion.state)
    return dst


def convert_checkpoint(src, dst, arch: Optional[str] = None, layout: str = 'auto',
                       copy: str = 'query') -> Conversion:
    """Convert ``src`` and write the encoder to ``dst``; return what was done."""
    conversion = convert_file(src, arch, layout, copy)
    write_encoder(conversion, dst)
    return conversion


def authors_matssl_to_suite(state: Mapping[str, torch.Tensor], source: str = 'checkpoint') -> State:
    """Rename the authors' full MatSSL state dict (backbone, gates, head) to MatSSLModel's names."""
    state = strip_module(state)
    if detect_layout(state) != 'matssl-authors':
        raise EncoderMismatchError(f'{source}: not a MatSSL authors\' checkpoint '
                                   f'(no attn_module.gates.*)')
    _check_matssl_aliases(state, source)
    renames = (('backbone.', 'encoder.backbone.'), ('attn_module.gates.', 'encoder.gates.'),
               ('projection_head.layers.', 'head.'))
    aliases = tuple(a for a, _ in MATSSL_ALIASES)
    mapped, unknown = {}, []
    for key, value in state.items():
        for old, new in renames:
            if key.startswith(old):
                mapped[new + key[len(old):]] = value
                break
        else:
            if not key.startswith(aliases):
                unknown.append(key)
    if unknown:
        raise EncoderMismatchError(f'{source}: unrecognised keys in a MatSSL checkpoint '
                                   f'(e.g. {", ".join(unknown[:3])})')
    return mapped


def load_authors_matssl(model: nn.Module, checkpoint: Union[str, os.PathLike, Mapping]) -> None:
    """Load the authors' MatSSL checkpoint (file or state dict) into a suite MatSSLModel, strictly."""
    if isinstance(checkpoint, Mapping):
        source, state = 'MatSSL checkpoint', checkpoint
    else:
        source, state = str(checkpoint), read_state_dict(Path(checkpoint))
    mapped = authors_matssl_to_suite(state, source)
    problems = state_mismatches(model.state_dict(), mapped)
    if problems:
        raise EncoderMismatchError(f'{source} does not fit {type(model).__name__}: '
                                   + '; '.join(problems))
    model.load_state_dict(mapped, strict=True)
