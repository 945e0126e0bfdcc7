"""Errors raised while reading event files or fetching datasets."""
from __future__ import annotations

import os

__all__ = ["EventFileError", "DatasetDownloadError"]


class EventFileError(ValueError):
    """An event file could not be read: truncated, wrong format, or events outside the sensor.

    The message always starts with the file's path and then says what was wrong and what was
    expected. The path is kept on the exception as :attr:`path`.

    Args:
        path: the file concerned.
        problem: what was wrong and what was expected.

    Attributes:
        path (str): the file concerned.
        problem (str): the message without the path.
    """

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):  # keep the two-argument constructor picklable (DataLoader workers)
        return (type(self), (self.path, self.problem))


class DatasetDownloadError(RuntimeError):
    """A dataset could not be downloaded (no network, a blocked or moved URL, a failed checksum).

    The message names the dataset, the URL, the folder the files go to and the cause.

    Attributes:
        url (str | None): the address that was tried.
    """

    def __init__(self, message: str, url: str | None = None) -> None:
        self.url = url
        super().__init__(message)

    def __reduce__(self):
        return (type(self), (str(self), self.url))
