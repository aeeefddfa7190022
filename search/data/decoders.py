"""Video decoders: torchcodec (PyTorch's own, CPU or CUDA NVDEC) where it loads, else PyAV.

``data.decoder`` picks one: ``"auto"`` (torchcodec when it can be loaded here, else PyAV with a
one-line notice on stderr), ``"torchcodec"`` or ``"pyav"``. torchcodec needs FFmpeg's shared
libraries (Debian: ``apt-get install ffmpeg``) and a build that matches the installed torch
(the CPU build for a CPU torch); when it cannot be loaded, PyAV (which bundles its own FFmpeg)
decodes instead. Both return the same frames as uint8 ``(T, H, W, 3)``, within codec rounding.

``decode_frames(path, indices)`` is the one entry point: the frames at ``indices``, or every
frame when ``indices`` is None.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from search.design.config import DECODE_DEVICES, DECODERS

__all__ = ["DECODERS", "DECODE_DEVICES", "decode_frames", "resolve_decoder"]
_noticed: set[str] = set()  # notices already printed by this process


@functools.cache
def torchcodec_problem() -> str | None:
    """Why torchcodec cannot decode video here (one line), or None when it can."""
    try:
        from torchcodec._core import get_ffmpeg_library_versions
        from torchcodec.decoders import VideoDecoder  # noqa: F401

        get_ffmpeg_library_versions()  # raises when FFmpeg's libraries cannot be loaded
    except Exception as exc:  # ImportError, OSError (FFmpeg / CUDA libraries), RuntimeError
        text = str(exc).strip().splitlines()
        return f"{type(exc).__name__}: {text[0] if text else ''}"[:200]
    return None


def resolve_decoder(name: str) -> str:
    """The decoder that will run for the setting ``name``: ``"torchcodec"`` or ``"pyav"``.

    ``auto`` and ``torchcodec`` fall back to PyAV when torchcodec cannot be loaded, with a
    one-line notice on stderr (once per process). Raises ``ValueError`` for an unknown name.
    """
    if name not in DECODERS:
        raise ValueError(f"decoder: unknown {name!r}; choose from {', '.join(DECODERS)}")
    if name == "pyav":
        return "pyav"
    problem = torchcodec_problem()
    if problem is None:
        return "torchcodec"
    notice(f"notice: data.decoder={name}: torchcodec cannot be loaded ({problem}); "
           f"decoding with PyAV")
    return "pyav"


def check_decoder(name: str, device: str = "cpu") -> str:
    """``resolve_decoder(name)``, plus a notice when PyAV will decode what ``device`` asked of
    the GPU (PyAV decodes on the CPU only)."""
    decoder = resolve_decoder(name)
    if decoder == "pyav" and device != "cpu":
        notice(f"notice: data.decode_device={device}: PyAV decodes on the CPU only; decoding "
               f"on the CPU")
    return decoder


def notice(line: str) -> None:
    """Print ``line`` on stderr once per process."""
    if line not in _noticed:
        _noticed.add(line)
        print(line, file=sys.stderr, flush=True)


def decode_frames(path: str | Path, indices: np.ndarray | Callable[[int], np.ndarray] | None, *,
                  decoder: str = "pyav", device: str = "cpu") -> Tensor:
    """Frames of a video: uint8 ``(T, H, W, 3)``.

    ``indices``: the frame indices, None for every frame, or a function from the video's
    frame count to the indices (the count is the content's: a truncated file states too many).
    ``decoder`` is a resolved name (``resolve_decoder``); ``device="cuda"`` decodes on the GPU
    with torchcodec (NVDEC) and returns a CUDA tensor. Indices past the end raise ``IndexError``.
    """
    if decoder == "torchcodec":
        return _torchcodec_frames(path, indices, device)
    if device != "cpu":
        raise ValueError(f"decode_device: {device!r} needs data.decoder=torchcodec")
    if callable(indices):  # PyAV cannot count without decoding: decode all, then pick
        frames = _pyav_frames(path, None)
        return frames[torch.from_numpy(np.asarray(indices(len(frames)), dtype=np.int64))]
    return _pyav_frames(path, indices)


def _torchcodec_frames(path: str | Path, indices: np.ndarray | Callable[[int], np.ndarray] | None,
                       device: str) -> Tensor:
    from torchcodec.decoders import VideoDecoder

    # seek_mode="exact" scans the packets once: the frame count is the content's, not the
    # header's. num_ffmpeg_threads=0 lets FFmpeg pick its threads, as PyAV's "AUTO" does.
    decoder = VideoDecoder(str(path), device=device, dimension_order="NHWC", seek_mode="exact",
                           num_ffmpeg_threads=0)
    n_frames = int(decoder.metadata.num_frames or 0)
    if n_frames == 0:
        raise ValueError("no decodable video frames")
    if callable(indices):
        indices = indices(n_frames)
    wanted = list(range(n_frames)) if indices is None else [int(i) for i in indices]
    if wanted and max(wanted) >= n_frames:
        raise IndexError(f"frame {max(wanted)} of a {n_frames}-frame video")
    return decoder.get_frames_at(wanted).data  # (T, H, W, 3)


def _pyav_frames(path: str | Path, indices: np.ndarray | None) -> Tensor:
    import av

    keep = None if indices is None else {int(i) for i in indices}
    last = None if indices is None else max(keep or {0})
    frames: dict[int, np.ndarray] = {}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for count, frame in enumerate(container.decode(stream)):
            if keep is None or count in keep:
                frames[count] = frame.to_ndarray(format="rgb24")  # (H, W, 3)
            if last is not None and count >= last:
                break
    if not frames:
        raise ValueError("no decodable video frames")
    order = sorted(frames) if indices is None else [int(i) for i in indices]
    missing = [i for i in order if i not in frames]
    if missing:
        raise IndexError(f"frame {missing[0]} of a {max(frames) + 1}-frame video")
    return torch.from_numpy(np.stack([frames[i] for i in order]))  # (T, H, W, 3)

