"""A dataset over a folder of event files: class sub-folders, or a label-list file."""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from snn.datasets.readers import READERS, check_sensor_size, read_events

__all__ = ["EventFolder"]


class EventFolder(Dataset):
    """Event recordings in a folder, one file per sample, read with :func:`read_events`.

    Two layouts:

    (a) ``labels=None``: one sub-folder of ``root`` per class; class names are sorted and
        numbered from 0; event files are found recursively inside each class folder.
    (b) ``labels=<file>``: a label-list file with one ``<name> <label>`` line per sample,
        separated by tabs or spaces; blank lines and lines starting with ``#`` (comments,
        headers) are skipped. ``<name>`` is a path relative to ``root``, with or without its
        extension (``"17"`` finds ``root/17.bs2``). Integer labels are used as given
        (``classes = ["0", ..., str(max)]``); other labels are sorted and numbered from 0.
        The file is UTF-8 text (a byte-order mark is allowed).
        The N-MNIST "small" set uses this layout (``train1K.txt``: ``<id>\\t<label>``).

    With ``classes`` given, both layouts number their classes by that list instead of by their
    own sorted names: a test folder lacking a class of the training set keeps the training
    set's numbers for the others (``snn evaluate`` passes the training run's class names).

    Args:
        root: folder holding the event files.
        labels: label-list file (layout b); a relative path is looked up in the working
            directory, then in ``root``.
        sensor_size: tonic ``(W, H, P)``, e.g. ``(34, 34, 2)`` for N-MNIST. Every file is
            checked against it when read.
        extensions: file extensions to use (default: every extension in ``READERS``).
        transform: optional callable applied to each event array (e.g. a tonic transform).
        classes: class names in label order (label ``i`` is ``classes[i]``), e.g. a training
            folder's ``classes``. Every class folder (layout a) or label (layout b) must be one
            of them; classes without samples are allowed. An integer label ``"7"`` (or
            ``"07"``) matches the name ``"7"``. Default: the folder's own sorted names / labels.

    Returns (``__getitem__``):
        ``(events, label)``: ``events`` a 1-D array of dtype ``tonic.io.events_struct``
        (x, y int16; t int64 in µs; p bool) unless ``transform`` changes it, ``label`` an int.

    Attributes:
        root (Path), sensor_size (tuple), classes (list[str]), files (list[Path]),
        targets (list[int]), labels_file (Path | None), extensions (tuple[str, ...]).

    Raises:
        FileNotFoundError: ``root`` or the label file does not exist; label entries whose file
            is missing (names the entries, the label file and ``root``).
        ValueError: no event files found; a malformed label line (names file and line);
            a label file that is not UTF-8 text (names the file and the byte); an entry
            escaping ``root``; an extension without a reader; bad ``sensor_size``; with
            ``classes``, a class folder or label that is not one of them (names it).
        EventFileError: from ``__getitem__``, for a bad file or events outside the sensor.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        labels: str | os.PathLike | None = None,
        *,
        sensor_size: tuple[int, int, int],
        extensions: Iterable[str] | None = None,
        transform: Callable[[np.ndarray], Any] | None = None,
        classes: Sequence[str] | None = None,
    ) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(f"EventFolder: root folder {self.root} does not exist")
        self.sensor_size = check_sensor_size(sensor_size)
        self.extensions = _normalize_extensions(extensions)
        self.transform = transform
        self.labels_file: Path | None = None
        self._given_classes = _check_classes(classes)
        if labels is None:
            self.files, self.targets, self.classes = self._scan_class_folders()
        else:
            self.labels_file = self._find_labels_file(labels)
            self.files, self.targets, self.classes = self._read_label_list(self.labels_file)

    # ------------------------------------------------------------------ layouts
    def _scan_class_folders(self) -> tuple[list[Path], list[int], list[str]]:
        class_dirs = sorted(d for d in self.root.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not class_dirs:
            raise ValueError(f"EventFolder: no class sub-folders in {self.root}; use one folder per "
                             "class, or pass labels=<label-list file>")
        names = [d.name for d in class_dirs]
        classes = names if self._given_classes is None else self._given_classes
        index = {c: i for i, c in enumerate(classes)}
        unknown = [n for n in names if n not in index]
        if unknown:
            raise ValueError(f"EventFolder: class folder{'s' if len(unknown) > 1 else ''} "
                             f"{', '.join(map(repr, unknown))} of {self.root} "
                             f"{'are' if len(unknown) > 1 else 'is'} not among the {len(classes)} known classes "
                             f"{_shown(classes)}; a model can only be tested on classes it was trained on")
        files: list[Path] = []
        targets: list[int] = []
        for d in class_dirs:
            found = sorted(f for f in d.rglob("*") if f.suffix.lower() in self.extensions and f.is_file())
            files += found
            targets += [index[d.name]] * len(found)
        if not files:
            raise ValueError(f"EventFolder: no event files with extensions {list(self.extensions)} "
                             f"in the class folders of {self.root}")
        return files, targets, list(classes)

    def _find_labels_file(self, labels: str | os.PathLike) -> Path:
        given = Path(labels).expanduser()
        for candidate in (given, self.root / given):
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(f"EventFolder: label file labels={os.fspath(labels)!r} not found "
                                f"(looked at {given} and {self.root / given})")

    def _read_label_list(self, labels_file: Path) -> tuple[list[Path], list[int], list[str]]:
        entries: list[tuple[int, str, str]] = []  # (line number, name, label)
        try:  # utf-8-sig: a byte-order mark (Windows Notepad) is not part of the first name
            text = labels_file.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as e:
            line = bytes(e.object[: e.start]).count(b"\n") + 1
            raise ValueError(f"{labels_file}:{line}: the label file is not UTF-8 text (byte "
                             f"0x{e.object[e.start]:02x}); save it as UTF-8") from None
        for number, line in enumerate(text.split("\n"), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            fields = line.split()
            if len(fields) != 2:
                raise ValueError(f"{labels_file}:{number}: expected '<name> <label>', got {line!r}")
            entries.append((number, fields[0], fields[1]))
        if not entries:
            raise ValueError(f"EventFolder: label file {labels_file} has no '<name> <label>' entries")
        files: list[Path] = []
        missing: list[str] = []
        for number, name, _ in entries:
            path = self._resolve(name, labels_file, number)
            if path is None:
                missing.append(f"{name!r} (line {number})")
            else:
                files.append(path)
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise FileNotFoundError(f"{labels_file}: {len(missing)} entr{'y has' if len(missing) == 1 else 'ies have'} "
                                    f"no event file in {self.root} with extensions {list(self.extensions)}: {shown}")
        raw = [label for _, _, label in entries]
        if self._given_classes is not None:
            return files, self._numbered(raw, entries, labels_file), list(self._given_classes)
        try:
            ints = [int(label) for label in raw]
        except ValueError:
            classes = sorted(set(raw))
            index = {c: i for i, c in enumerate(classes)}
            return files, [index[label] for label in raw], classes
        if min(ints) < 0:
            number = entries[ints.index(min(ints))][0]
            raise ValueError(f"{labels_file}:{number}: integer labels must be >= 0, got {min(ints)}")
        return files, ints, [str(i) for i in range(max(ints) + 1)]

    def _numbered(self, raw: list[str], entries: list[tuple[int, str, str]], labels_file: Path) -> list[int]:
        """Numbers of the labels ``raw`` in the given ``classes``; an integer label also
        matches its canonical spelling (``"07"`` → ``"7"``)."""
        classes = self._given_classes or []
        index = {c: i for i, c in enumerate(classes)}
        targets: list[int] = []
        unknown: dict[str, int] = {}  # label -> first line
        for (number, _, _), label in zip(entries, raw):
            key = label
            if key not in index:
                try:
                    key = str(int(label))
                except ValueError:
                    pass
            if key in index:
                targets.append(index[key])
            else:
                unknown.setdefault(label, number)
        if unknown:
            shown = ", ".join(f"{lab!r} (line {n})" for lab, n in list(unknown.items())[:5])
            raise ValueError(f"{labels_file}: label{'s' if len(unknown) > 1 else ''} {shown}"
                             f"{' and more' if len(unknown) > 5 else ''} not among the {len(classes)} known "
                             f"classes {_shown(classes)}; a model can only be tested on classes it was trained on")
        return targets

    def _resolve(self, name: str, labels_file: Path, number: int) -> Path | None:
        normal = os.path.normpath(name)
        if os.path.isabs(normal) or normal == ".." or normal.startswith(".." + os.sep):
            raise ValueError(f"{labels_file}:{number}: entry {name!r} points outside root {self.root}")
        candidate = self.root / normal
        if candidate.suffix.lower() in self.extensions and candidate.is_file():
            return candidate
        for ext in self.extensions:
            with_ext = candidate.with_name(candidate.name + ext)
            if with_ext.is_file():
                return with_ext
        return None

    # ------------------------------------------------------------------ Dataset
    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        path = self.files[index]
        events = read_events(path, self.sensor_size)
        if self.transform is not None:
            events = self.transform(events)
        return events, int(self.targets[index])

    @property
    def cache_identity(self) -> dict[str, Any]:
        """Part of the frame cache's identity (:func:`snn.datasets.cache.dataset_identity`): a
        hash of every label, since a class numbering (``classes``) changes the labels of the
        same files."""
        digest = hashlib.sha256(np.asarray(self.targets, dtype="<i8").tobytes()).hexdigest()
        return {"targets": digest[:32]}

    def source_files(self) -> list[Path]:
        """The files this dataset reads (event files, then the label file if any); used by
        :class:`~snn.datasets.FrameDataset` to tell when its cache is stale."""
        return list(self.files) + ([self.labels_file] if self.labels_file is not None else [])

    def __repr__(self) -> str:
        layout = f"labels={os.fspath(self.labels_file)!r}" if self.labels_file else "class folders"
        return (f"EventFolder(root={os.fspath(self.root)!r}, {layout}, n={len(self)}, "
                f"classes={len(self.classes)}, sensor_size={self.sensor_size})")


def _check_classes(classes: Sequence[str] | None) -> list[str] | None:
    """``classes`` as a list of distinct non-empty strings (or None)."""
    if classes is None:
        return None
    if isinstance(classes, str) or not all(isinstance(c, str) and c for c in classes):
        raise ValueError(f"EventFolder: classes must be a list of class names, got {classes!r}")
    names = list(classes)
    if not names or len(set(names)) != len(names):
        raise ValueError(f"EventFolder: classes must be distinct names, at least one, got {names!r}")
    return names


def _shown(classes: Sequence[str], limit: int = 12) -> str:
    """``['a', 'b', ...]`` shortened to ``limit`` names."""
    head = ", ".join(map(repr, classes[:limit]))
    return f"[{head}{', ...' if len(classes) > limit else ''}]"


def _normalize_extensions(extensions: Iterable[str] | None) -> tuple[str, ...]:
    if extensions is None:
        return tuple(READERS)
    if isinstance(extensions, str):
        extensions = [extensions]
    exts = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
    unknown = [e for e in exts if e not in READERS]
    if unknown or not exts:
        raise ValueError(f"EventFolder: extensions={list(extensions)} include ones without a reader "
                         f"{unknown}; supported: {sorted(READERS)} (add with register_reader)")
    return exts
