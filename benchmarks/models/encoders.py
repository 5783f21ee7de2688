"""ResNet encoders and their state dicts: the one currency between methods and fine-tuning.

An encoder state dict uses torchvision's ResNet key names without the
classifier (``conv1.weight``, ``bn1.*``, ``layer1.0.conv1.weight``, ...).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional

import torch
import torchvision
from torch import nn

from matssl_bench.errors import EncoderMismatchError, UnreadableFileError

CLASSIFIER_PREFIXES = ('fc.',)


def build_resnet(arch: str) -> torchvision.models.ResNet:
    """A randomly initialised torchvision ResNet (resnet18/34/50/101/152)."""
    if not arch.startswith('resnet') or not hasattr(torchvision.models, arch):
        raise ValueError(f'unknown ResNet architecture {arch!r}')
    return getattr(torchvision.models, arch)(weights=None)


def stage_channels(arch: str) -> tuple[int, int, int, int]:
    """Output channels of the four residual stages."""
    expansion = 4 if arch in ('resnet50', 'resnet101', 'resnet152') else 1
    return tuple(c * expansion for c in (64, 128, 256, 512))


def encoder_only(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the classifier: an encoder state dict holds the feature extractor only."""
    return {k: v for k, v in state.items() if not k.startswith(CLASSIFIER_PREFIXES)}


def strip_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Keep the keys under ``prefix`` (e.g. ``backbone.``) with the prefix removed."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def state_mismatches(expected: Mapping[str, torch.Tensor],
                     given: Mapping[str, torch.Tensor]) -> list[str]:
    """Human-readable differences in keys and shapes between two state dicts (empty if none)."""
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    wrong_shape = sorted(k for k in set(expected) & set(given)
                         if tuple(expected[k].shape) != tuple(given[k].shape))
    problems = []
    if missing:
        problems.append(f'{len(missing)} missing keys (e.g. {", ".join(missing[:3])})')
    if unexpected:
        problems.append(f'{len(unexpected)} unexpected keys (e.g. {", ".join(unexpected[:3])})')
    if wrong_shape:
        k = wrong_shape[0]
        problems.append(f'{len(wrong_shape)} shape mismatches (e.g. {k}: '
                        f'{tuple(given[k].shape)} vs {tuple(expected[k].shape)})')
    return problems


def check_encoder_state(encoder: nn.Module, state: Mapping[str, torch.Tensor],
                        source: str = 'encoder state') -> None:
    """Raise EncoderMismatchError unless ``state`` fills every encoder tensor exactly.

    A classifier (``fc.*``) on either side is not part of the encoder and is ignored.
    """
    problems = state_mismatches(encoder_only(encoder.state_dict()), encoder_only(state))
    if problems:
        raise EncoderMismatchError(f'{source} does not fit the {type(encoder).__name__}: '
                                   + '; '.join(problems))


def load_encoder_state(encoder: nn.Module, state: Mapping[str, torch.Tensor],
                       source: str = 'encoder state') -> None:
    """Strictly load ``state`` into ``encoder``; every encoder tensor must be filled."""
    check_encoder_state(encoder, state, source)
    # The check above proved an exact key match apart from a classifier, which stays as it is.
    encoder.load_state_dict(encoder_only(state), strict=False)


_TORCH_ADVICE = ('weights_only', 'Weights only load failed', 'trusted source', 'file an issue',
                 'Check the documentation', 'WeightsUnpickler error:')


def describe_load_error(err: BaseException) -> str:
    """One line saying why ``torch.load(..., weights_only=True)`` failed, without torch's
    advice to load with ``weights_only=False`` (which would run the file's code)."""
    text = str(err)
    lines = [' '.join(line.split()) for line in text.splitlines()]
    detail = [line for line in lines if line and not any(a in line for a in _TORCH_ADVICE)]
    if 'Weights only load failed' in text:
        return ('refused by the weights-only loader: '
                + (detail[0] if detail else 'content other than tensors and containers'))[:200]
    return f'{type(err).__name__}: {(detail[0] if detail else "")[:200]}'.rstrip(': ')


def load_torch_file(path: Path, what: str = 'weight file'):
    """``torch.load`` of ``path`` with the weights-only loader; truncated, random or refused
    content is one :class:`UnreadableFileError` naming the file (a missing one raises as is)."""
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # noqa: BLE001 - truncated, random or refused content
        raise UnreadableFileError(f'{path}: unreadable {what} '
                                  f'({describe_load_error(err)})') from None


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint file and return its (possibly nested) state dict."""
    checkpoint = load_torch_file(path)
    for key in ('state_dict', 'model', 'encoder'):
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    if not isinstance(checkpoint, dict) or not all(isinstance(v, torch.Tensor)
                                                   for v in checkpoint.values()):
        raise EncoderMismatchError(f'{path}: not a state dict of tensors')
    return dict(checkpoint)


def encoder_state_of(resnet: nn.Module, prefix: Optional[str] = None) -> dict[str, torch.Tensor]:
    """Detached CPU copy of a ResNet's encoder tensors (optionally under ``prefix``)."""
    state = resnet.state_dict()
    if prefix:
        state = strip_prefix(state, prefix)
    return {k: v.detach().cpu().clone() for k, v in encoder_only(state).items()}
