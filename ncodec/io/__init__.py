"""Reading and writing media files for the CLI: the shared file handling is here, images are in
:mod:`ncodec.io.image` (Pillow) and audio in :mod:`ncodec.io.audio` (soundfile, PyAV); every
name of those two is importable from ``ncodec.io`` as well.

Every output is written through :func:`atomic_output`: a temporary file beside the target,
renamed into place on success, so a failed encode or decode never leaves a partial file. An
existing file is replaced only when the caller says so (``force``), and only if it is a
regular file: a symlink, FIFO, device node, socket or directory at the output path is never
replaced (:func:`check_output`).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import Callable, Iterator

__all__ = [
    "AUDIO_OUT_SUFFIXES", "AUDIO_SUFFIXES", "AUDIO_TRACK_SUFFIXES", "AudioWriter", "IMAGE_SUFFIXES",
    "atomic_output", "close_atomic", "audio_bytes", "audio_info", "check_output", "image_bytes", "iter_audio_blocks",
    "pil_to_tensor", "read_audio", "read_image", "read_rgb", "write_atomic",
]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_KINDS = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def check_output(path: str | os.PathLike, *, force: bool = False) -> None:
    """Raise unless ``path`` may be written: it does not exist, or it is a regular file and
    ``force`` is set. Anything else at ``path`` (a symlink, even to a regular file; a FIFO,
    device, socket or directory) is refused with or without ``force``: ncodec replaces only
    regular files, and never writes through links.

    Raises:
        FileExistsError: a regular file exists and ``force`` is not set.
        ValueError: something other than a regular file is there.
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    for test, kind in _KINDS:
        if test(mode):
            raise ValueError(f"{path} is {kind}: ncodec only writes regular files and never replaces anything "
                             f"else (even with --force); choose another output path")
    if not stat.S_ISREG(mode):
        raise ValueError(f"{path} is not a regular file: ncodec never replaces it")
    if not force:
        raise FileExistsError(f"{path} exists (use --force to overwrite)")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, *, force: bool = False) -> Iterator[Path]:
    """Write ``path`` all at once: yields a temporary file's path beside it, renamed to ``path``
    when the ``with`` block ends without an exception.

    >>> with atomic_output("out.bin", force=True) as tmp:
    ...     tmp.write_bytes(data)             # or open(tmp, "wb"), torch.save(obj, tmp), ...

    ``path`` is checked before anything is written and again just before the rename
    (:func:`check_output`: an existing file needs ``force``; only regular files are ever
    replaced). The temporary file (``.NAME.XXXX.part`` in the target's folder, so the rename
    never crosses file systems; made empty, with the mode a new file gets under the umask) is
    removed on any exception, the target then left as it was. Missing parent folders are made.

    Raises:
        FileExistsError, ValueError: as :func:`check_output`, before the body runs or after it.
    """
    target = Path(path)
    check_output(target, force=force)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(name)
    try:
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        yield tmp
        check_output(target, force=force)  # something may have appeared there meanwhile
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def close_atomic(output: contextlib.AbstractContextManager, close: Callable[[], None], exc_type, exc, tb) -> None:
    """End a streaming writer's :func:`atomic_output` context ``output``: ``close()`` its file
    first (a container writes its header's lengths or its index on close), then rename it into
    place; when the writer's block or the close raised, the temporary file is removed and the
    exception goes on (the block's, or else the close's)."""
    try:
        close()
    except BaseException as close_exc:
        if exc is None:
            exc_type, exc, tb = type(close_exc), close_exc, close_exc.__traceback__
        output.__exit__(exc_type, exc, tb)
        raise
    output.__exit__(exc_type, exc, tb)


def write_atomic(path: str | os.PathLike, data: bytes, *, force: bool = False) -> None:
    """Write ``data`` to ``path`` all at once (:func:`atomic_output`). Refuses to replace an
    existing file unless ``force``, and anything but a regular file always (:func:`check_output`)."""
    with atomic_output(path, force=force) as tmp:
        tmp.write_bytes(data)


# The modalities' readers and writers, importable from ncodec.io as they always were (their
# modules import the helpers above lazily, so the order here does not matter).
from ncodec.io.audio import (AUDIO_OUT_SUFFIXES, AUDIO_SUFFIXES, AUDIO_TRACK_SUFFIXES,  # noqa: E402
                             AudioWriter, audio_bytes, audio_info, iter_audio_blocks, read_audio)
from ncodec.io.image import IMAGE_SUFFIXES, image_bytes, pil_to_tensor, read_image, read_rgb  # noqa: E402
