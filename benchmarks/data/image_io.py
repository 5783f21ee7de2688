"""Reading micrograph and mask files: the one place that opens image files.

- Images (JPEG, PNG, TIFF incl. deflate/LZW) become ``HxWx3 uint8``: grayscale is
  repeated, alpha dropped, palette expanded; deeper images are scaled to 8 bit by
  :data:`BIT_DEPTH_POLICY` (16-bit divided by 256, 12-bit divided by 16).
- TIFF files are read with ``tifffile`` (microscopy's standard reader: 12/16-bit,
  planar RGB, multi-page files, whose first page is the image); PIL reads the
  rest, and the TIFFs tifffile cannot decode without the optional ``imagecodecs``
  package (LZW, JPEG) or that are palette/bilevel images.
- Masks become ``HxW uint8`` class ids: 8-bit grayscale and palette ('P') masks
  are taken as ids (the palette is only display); RGB masks are mapped through a
  colour palette and unknown colours are reported; an RGB mask with R == G == B
  is read as grayscale.
- A file that cannot be decoded (corrupt, truncated) raises ``DataError`` naming it.
- Size policy (:func:`reconcile_sizes`): an image and its mask that differ by at
  most ``tolerance`` (2) pixels per axis are both cropped to the common top-left
  size with a :class:`DataWarning`; a larger difference is a ``DataError``
  naming both files.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from matssl_bench.errors import DataError

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.tif', '.tiff', '.bmp')


class DataWarning(UserWarning):
    """A data inconsistency that the readers repaired (documented policy)."""


def _open(path: Path) -> Image.Image:
    try:
        img = Image.open(path)
        img.load()  # decode now so truncation surfaces here
        return img
    except FileNotFoundError:
        raise DataError(f'{path}: file not found') from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
            Image.DecompressionBombError) as err:
        raise DataError(f'{path}: cannot decode image ({err})') from None


# How images deeper than 8 bit become uint8 (recorded in every data set's meta, hence in
# every fine-tuning record). Integer images: stored in 16 bits (any integer type wider than
# 8 bits) and a maximum of 4096 or more -> divided by 256; BitsPerSample 12, or a maximum
# below 4096 -> 12-bit data (the usual camera depth) divided by 16. The rule is per image:
# a 16-bit image that is genuinely darker than 1/16 of full scale is brightened 16x.
BIT_DEPTH_POLICY = ('8-bit as is; 12-bit (TIFF BitsPerSample 12, or integer data wider than '
                    '8 bit whose maximum is below 4096) divided by 16; other 16-bit integer '
                    'divided by 256; float in [0, 1] times 255, else clipped to 0-255')
TWELVE_BIT_LIMIT = 4096


def _to_uint8(arr: np.ndarray, bits: Optional[int] = None) -> np.ndarray:
    """``arr`` scaled to uint8 by :data:`BIT_DEPTH_POLICY`; ``bits``: the file's declared depth."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if arr.dtype.kind in 'iu' and (arr.dtype.itemsize > 1 or arr.max(initial=0) > 255):
        arr = arr.astype(np.int64).clip(0, None)
        shift = 4 if bits == 12 or (bits in (None, 16) and arr.max(initial=0) < TWELVE_BIT_LIMIT) \
            else 8
        return (arr >> shift).clip(0, 255).astype(np.uint8)
    if arr.dtype.kind == 'f':
        top = 1.0 if arr.max(initial=0) <= 1.0 else 255.0
        return (arr / top * 255.0).round().clip(0, 255).astype(np.uint8)
    return arr.clip(0, 255).astype(np.uint8)


def _read_tiff(path: Path) -> Optional[np.ndarray]:
    """The first page of a TIFF as uint8 (H, W) or (H, W, C) by tifffile; None where PIL
    should read it (palette or bilevel pages, codecs that need ``imagecodecs``)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            if page.photometric in (tifffile.PHOTOMETRIC.PALETTE,) or page.bitspersample == 1:
                return None
            try:
                arr = page.asarray()
            except ValueError as err:
                if 'imagecodecs' in str(err):
                    return None
                raise
            bits = page.bitspersample
    except FileNotFoundError:
        raise DataError(f'{path}: file not found') from None
    except (tifffile.TiffFileError, ValueError, OSError, IndexError) as err:
        raise DataError(f'{path}: cannot decode image ({err})') from None
    if arr.ndim == 3 and arr.shape[0] in (3, 4) and arr.shape[2] not in (3, 4):
        arr = np.moveaxis(arr, 0, -1)  # planar (separate) RGB
    if arr.ndim == 3 and arr.shape[2] in (2, 4):
        arr = arr[..., :-1] if arr.shape[2] == 4 else arr[..., 0]  # drop alpha
    return _to_uint8(arr, bits)


def read_image(path) -> np.ndarray:
    """An image file as ``HxWx3 uint8``."""
    path = Path(path)
    arr = _read_tiff(path) if path.suffix.lower() in ('.tif', '.tiff') else None
    if arr is not None:
        return _as_rgb(arr, path)
    img = _open(path)
    if img.mode in ('RGB', 'L'):
        arr = np.asarray(img)
    elif img.mode in ('I;16', 'I;16B', 'I;16L', 'I', 'F'):
        arr = _to_uint8(np.asarray(img))
    else:  # RGBA, LA, P, CMYK, 1, ...: let PIL drop alpha / expand the palette
        arr = np.asarray(img.convert('RGB'))
    return _as_rgb(arr, path)


def _as_rgb(arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise DataError(f'{path}: unsupported image layout {arr.shape}')
    return np.ascontiguousarray(arr)


def read_mask(path, palette: Optional[Sequence[Sequence[int]]] = None) -> np.ndarray:
    """A mask file as ``HxW uint8`` class ids (see the module docstring for the rules)."""
    path = Path(path)
    img = _open(path)
    if img.mode in ('L', 'P'):
        return np.ascontiguousarray(np.asarray(img))
    if img.mode == '1':
        return np.asarray(img).astype(np.uint8)
    if img.mode in ('I;16', 'I;16B', 'I;16L', 'I'):
        arr = np.asarray(img)
        if arr.max(initial=0) > 255:
            raise DataError(f'{path}: mask values up to {int(arr.max())} do not fit class ids')
        return arr.astype(np.uint8)
    rgb = np.asarray(img.convert('RGB'))
    if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
        return np.ascontiguousarray(rgb[..., 0])
    if not palette:
        raise DataError(f'{path}: colour mask but the data set defines no palette')
    return colours_to_ids(rgb, palette, path)


def colours_to_ids(rgb: np.ndarray, palette: Sequence[Sequence[int]], path='') -> np.ndarray:
    """Map each pixel's colour to the index of that colour in ``palette``."""
    code = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    keys = np.array([(r << 16) | (g << 8) | b for r, g, b in palette], np.int32)
    ids = np.full(code.shape, 255, np.uint8)
    for class_id, key in enumerate(keys):
        ids[code == key] = class_id
    unknown = np.unique(code[ids == 255])
    if unknown.size:
        shown = ', '.join(f'({k >> 16},{(k >> 8) & 255},{k & 255})' for k in unknown[:5])
        more = f' and {unknown.size - 5} more' if unknown.size > 5 else ''
        raise DataError(f'{path}: {unknown.size} colour(s) not in the palette: {shown}{more}')
    return ids


def check_labels(mask: np.ndarray, num_classes: int, path) -> None:
    """DataError naming ``path`` when the mask holds ids outside ``0..num_classes-1``."""
    labels = np.unique(mask)
    unknown = labels[labels >= num_classes]
    if unknown.size:
        raise DataError(f'{path}: unknown label values {unknown.tolist()} '
                        f'(expected 0..{num_classes - 1})')


def reconcile_sizes(image: np.ndarray, mask: np.ndarray, image_path, mask_path,
                    tolerance: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Crop both to the common size when they differ by <= ``tolerance`` px; else DataError."""
    (ih, iw), (mh, mw) = image.shape[:2], mask.shape[:2]
    if (ih, iw) == (mh, mw):
        return image, mask
    if abs(ih - mh) > tolerance or abs(iw - mw) > tolerance:
        raise DataError(f'{image_path} ({iw}x{ih}) and {mask_path} ({mw}x{mh}): '
                        'image and mask sizes differ')
    h, w = min(ih, mh), min(iw, mw)
    warnings.warn(f'{image_path} ({iw}x{ih}) and {mask_path} ({mw}x{mh}) differ by '
                  f'<= {tolerance} px: both cropped to {w}x{h}', DataWarning, stacklevel=2)
    return image[:h, :w], mask[:h, :w]


def image_size(path) -> tuple[int, int]:
    """(width, height) from the header only."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            return img.size
    except FileNotFoundError:
        raise DataError(f'{path}: file not found') from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f'{path}: cannot decode image ({err})') from None


def write_png(path, array: np.ndarray) -> None:
    """Lossless PNG of an ``HxW`` or ``HxWx3`` uint8 array."""
    Image.fromarray(np.ascontiguousarray(array)).save(Path(path), format='PNG', compress_level=1)


def list_images(folder: Path) -> list[Path]:
    """Image files directly under ``folder``, in natural name order (img2 before img10)."""
    return sorted((p for p in Path(folder).iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith('.')),
                  key=lambda p: natural_key(p.stem))


def natural_key(text: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t.lower() for t in re.split(r'(\d+)', text))


def fingerprint(image: np.ndarray, size: int = 32) -> np.ndarray:
    """Zero-mean unit-norm ``size x size`` grey thumbnail; dot product = correlation."""
    grey = Image.fromarray(image).convert('L').resize((size, size), Image.BILINEAR)
    v = np.asarray(grey, np.float32).ravel()
    v = v - v.mean()
    return v / (np.linalg.norm(v) + 1e-6)
