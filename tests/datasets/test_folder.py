"""EventFolder: label-list layout on the real N-MNIST subset, class-folder layout, errors."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from snn.datasets import EventFileError, EventFolder, read_events
from snn.datasets.readers import EVENTS_DTYPE

NMNIST = (34, 34, 2)
TRAIN_COUNTS = {0: 97, 1: 116, 2: 99, 3: 93, 4: 105, 5: 92, 6: 94, 7: 117, 8: 87, 9: 100}
TEST_COUNTS = {0: 8, 1: 14, 2: 8, 3: 11, 4: 14, 5: 7, 6: 10, 7: 15, 8: 2, 9: 11}


def _npy_events(path, n=3, x=1, p=1):
    arr = np.zeros(n, dtype=[(f, "<i4") for f in "xytp"])
    arr["x"], arr["t"], arr["p"] = x, np.arange(n), p
    np.save(path, arr)
    return path


# ------------------------------------------------------------------ label-list layout (real data)
def test_label_list_subset_of_real_recordings(nmnist_small_dir, nmnist_labels30):
    ds = EventFolder(nmnist_small_dir, nmnist_labels30, sensor_size=NMNIST)
    assert len(ds) == 30 and ds.sensor_size == NMNIST
    assert ds.targets[:10] == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]  # MNIST train order
    assert [f.name for f in ds.files[:3]] == ["1.bs2", "2.bs2", "3.bs2"]
    assert ds.classes == [str(i) for i in range(10)]
    events, label = ds[2]
    assert events.dtype == EVENTS_DTYPE and 1069 <= len(events) <= 7152 and label == 4
    assert isinstance(label, int)
    np.testing.assert_array_equal(events, read_events(nmnist_small_dir / "3.bs2"))
    assert nmnist_labels30 in ds.source_files()


@pytest.mark.parametrize("name, counts", [("train1K.txt", TRAIN_COUNTS), ("test100.txt", TEST_COUNTS)])
def test_full_label_lists_match_source_md(nmnist_small_dir, name, counts):
    ds = EventFolder(nmnist_small_dir, name, sensor_size=NMNIST)  # relative name: found in root
    assert dict(Counter(ds.targets)) == counts
    assert len(ds) == sum(counts.values())


def test_label_list_separators_comments_paths_and_extension(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("a.npy", "b.npy", "sub/c.npy"):
        _npy_events(tmp_path / name)
    labels = tmp_path / "labels.txt"
    labels.write_text("# name label\r\n\r\na\t1\r\n  b.npy    0  \r\n# comment\r\nsub/c 2\r\n")
    ds = EventFolder(tmp_path, labels, sensor_size=(4, 4, 2))
    assert [f.relative_to(tmp_path).as_posix() for f in ds.files] == ["a.npy", "b.npy", "sub/c.npy"]
    assert ds.targets == [1, 0, 2]


def test_string_labels_are_sorted_into_classes(tmp_path):
    for name in ("a", "b", "c"):
        _npy_events(tmp_path / f"{name}.npy")
    (tmp_path / "l.txt").write_text("a dog\nb cat\nc dog\n")
    ds = EventFolder(tmp_path, "l.txt", sensor_size=(4, 4, 2))
    assert ds.classes == ["cat", "dog"] and ds.targets == [1, 0, 1]


def test_missing_label_entries_are_named(nmnist_small_dir, tmp_path):
    labels = tmp_path / "l.txt"
    labels.write_text("#sample #class\n1\t5\n99999\t3\n2\t0\nnope\t1\n")
    with pytest.raises(FileNotFoundError, match=r"l\.txt.*2 entries.*'99999' \(line 3\).*'nope' \(line 5\)"):
        EventFolder(nmnist_small_dir, labels, sensor_size=NMNIST)


def test_malformed_label_line_is_named(tmp_path):
    _npy_events(tmp_path / "a.npy")
    (tmp_path / "l.txt").write_text("a 1\na\n")
    with pytest.raises(ValueError, match=r"l\.txt:2.*'<name> <label>'"):
        EventFolder(tmp_path, "l.txt", sensor_size=(4, 4, 2))


def test_negative_integer_label_is_rejected(tmp_path):
    _npy_events(tmp_path / "a.npy")
    (tmp_path / "l.txt").write_text("a -1\n")
    with pytest.raises(ValueError, match=r"l\.txt:1.*>= 0"):
        EventFolder(tmp_path, "l.txt", sensor_size=(4, 4, 2))


def test_empty_label_list_is_rejected(tmp_path):
    (tmp_path / "l.txt").write_text("# only a header\n")
    with pytest.raises(ValueError, match=r"l\.txt.*no '<name> <label>' entries"):
        EventFolder(tmp_path, "l.txt", sensor_size=(4, 4, 2))


def test_entry_escaping_root_is_rejected(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    _npy_events(tmp_path / "outside.npy")
    (root / "l.txt").write_text("../outside 1\n")
    with pytest.raises(ValueError, match=r"'\.\./outside' points outside root"):
        EventFolder(root, "l.txt", sensor_size=(4, 4, 2))


def test_label_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"labels='nolabels\.txt'"):
        EventFolder(tmp_path, "nolabels.txt", sensor_size=(4, 4, 2))


# ------------------------------------------------------------------ class-folder layout
def test_class_folders_sorted_and_filtered(tmp_path):
    for cls, n in (("zebra", 2), ("ant", 3)):
        (tmp_path / cls / "deep").mkdir(parents=True)
        for i in range(n):
            _npy_events(tmp_path / cls / f"{i}.npy")
    _npy_events(tmp_path / "ant" / "deep" / "x.npy")        # found recursively
    (tmp_path / "ant" / "readme.txt").write_text("not events")  # ignored: no reader
    (tmp_path / ".hidden").mkdir()                            # ignored: hidden
    ds = EventFolder(tmp_path, sensor_size=(4, 4, 2))
    assert ds.classes == ["ant", "zebra"]
    assert Counter(ds.targets) == {0: 4, 1: 2}
    events, label = ds[len(ds) - 1]
    assert label == 1 and events.dtype == EVENTS_DTYPE and len(events) == 3


def test_extensions_filter_and_transform(tmp_path, write_atis):
    (tmp_path / "c").mkdir()
    _npy_events(tmp_path / "c" / "a.npy")
    write_atis(tmp_path / "c" / "b.bs2", [1, 2], [1, 1], [0, 5], [1, 0])
    ds = EventFolder(tmp_path, sensor_size=(4, 4, 2), extensions=["BS2"], transform=lambda ev: len(ev))
    assert [f.name for f in ds.files] == ["b.bs2"]
    assert ds[0] == (2, 0)


def test_unsupported_extension_argument(tmp_path):
    with pytest.raises(ValueError, match=r"extensions=.*'\.csv'.*register_reader"):
        EventFolder(tmp_path, sensor_size=(4, 4, 2), extensions=[".csv"])


def test_missing_root_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"root folder .*no_such_dir"):
        EventFolder(tmp_path / "no_such_dir", sensor_size=(4, 4, 2))


def test_no_class_folders_suggests_labels(tmp_path):
    _npy_events(tmp_path / "loose.npy")
    with pytest.raises(ValueError, match=r"no class sub-folders in .*labels="):
        EventFolder(tmp_path, sensor_size=(4, 4, 2))


def test_no_event_files_found(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"no event files with extensions"):
        EventFolder(tmp_path, sensor_size=(4, 4, 2))


def test_bad_sensor_size_is_named(tmp_path):
    with pytest.raises(ValueError, match="sensor_size"):
        EventFolder(tmp_path, sensor_size=(4, 4))


def test_events_outside_sensor_raise_on_read(tmp_path):
    (tmp_path / "c").mkdir()
    _npy_events(tmp_path / "c" / "wide.npy", x=9)
    ds = EventFolder(tmp_path, sensor_size=(4, 4, 2))
    with pytest.raises(EventFileError, match=r"wide\.npy.*x max 9.*sensor_size=\(4, 4, 2\)"):
        ds[0]


# ------------------------------------------------------------------ a given class numbering
def _class_folders(root, names, n=2):
    for name in names:
        (root / name).mkdir(parents=True)
        for i in range(n):
            _npy_events(root / name / f"{i}.npy")
    return root


def test_given_classes_number_a_folder_lacking_a_class(tmp_path):
    train = EventFolder(_class_folders(tmp_path / "train", ["cat", "dog", "emu"]), sensor_size=(4, 4, 2))
    assert train.classes == ["cat", "dog", "emu"]
    test = EventFolder(_class_folders(tmp_path / "test", ["dog", "emu"]), sensor_size=(4, 4, 2),
                       classes=train.classes)
    assert test.classes == ["cat", "dog", "emu"] and test.targets == [1, 1, 2, 2]  # not [0, 0, 1, 1]
    own = EventFolder(tmp_path / "test", sensor_size=(4, 4, 2))
    assert own.targets == [0, 0, 1, 1]  # without classes: its own sorted names, as before


def test_given_classes_reject_an_unknown_class_folder(tmp_path):
    root = _class_folders(tmp_path, ["cat", "fox"])
    with pytest.raises(ValueError, match=r"class folder 'fox' of .* not among the 3 known classes "
                                         r"\['cat', 'dog', 'emu'\]"):
        EventFolder(root, sensor_size=(4, 4, 2), classes=["cat", "dog", "emu"])


def test_given_classes_number_text_and_integer_labels(tmp_path):
    for name in ("a", "b", "c"):
        _npy_events(tmp_path / f"{name}.npy")
    (tmp_path / "text.txt").write_text("a emu\nb dog\n")
    ds = EventFolder(tmp_path, "text.txt", sensor_size=(4, 4, 2), classes=["cat", "dog", "emu"])
    assert ds.targets == [2, 1] and ds.classes == ["cat", "dog", "emu"]   # own sorted set would give [1, 0]
    (tmp_path / "ints.txt").write_text("a 07\nb 3\n")
    ds = EventFolder(tmp_path, "ints.txt", sensor_size=(4, 4, 2), classes=[str(i) for i in range(10)])
    assert ds.targets == [7, 3]
    (tmp_path / "bad.txt").write_text("a emu\nb fox\nc 12\n")
    with pytest.raises(ValueError, match=r"bad\.txt: labels 'fox' \(line 2\), '12' \(line 3\) not among"):
        EventFolder(tmp_path, "bad.txt", sensor_size=(4, 4, 2), classes=["cat", "dog", "emu"])


@pytest.mark.parametrize("classes", [[], ["a", "a"], "abc", ["a", 1]])
def test_bad_given_classes_are_named(tmp_path, classes):
    with pytest.raises(ValueError, match="classes"):
        EventFolder(_class_folders(tmp_path, ["a"]), sensor_size=(4, 4, 2), classes=classes)


# ------------------------------------------------------------------ label-file encoding
def test_label_list_with_byte_order_mark_is_read(tmp_path):
    for name in ("1", "2"):
        _npy_events(tmp_path / f"{name}.npy")
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbf1\t5\r\n2\t0\r\n")   # Windows Notepad's UTF-8
    ds = EventFolder(tmp_path, "bom.txt", sensor_size=(4, 4, 2))
    assert [f.name for f in ds.files] == ["1.npy", "2.npy"] and ds.targets == [5, 0]


def test_label_list_not_utf8_names_the_file_and_line(tmp_path):
    for name in ("1", "2"):
        _npy_events(tmp_path / f"{name}.npy")
    (tmp_path / "cp1252.txt").write_bytes(b"1\tcat\n2\tcaf\xe9\n")
    with pytest.raises(ValueError, match=r"cp1252\.txt:2: the label file is not UTF-8 text \(byte 0xe9\)"):
        EventFolder(tmp_path, "cp1252.txt", sensor_size=(4, 4, 2))
