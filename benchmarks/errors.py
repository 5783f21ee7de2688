"""Errors that the suite reports to its users as one clear line."""


class BenchmarkError(Exception):
    """Base of the suite's user-facing errors."""


class MissingResourceError(BenchmarkError):
    """A file the run needs (weights, data) is not where the suite looks for it."""


class DataError(BenchmarkError):
    """Input data is corrupt, inconsistent or in an unexpected layout."""


class EncoderMismatchError(BenchmarkError):
    """An encoder state dict does not fit the segmentation model's encoder."""


class UnreadableFileError(MissingResourceError):
    """A file the run needs exists but cannot be read (truncated, corrupt, refused by a
    weights-only load); like a missing file, it makes its row unavailable."""


class ConfigError(BenchmarkError):
    """A suite, option or plugin the user wrote is wrong (unknown key, missing key, bad value)."""


class DiskFullError(BenchmarkError, OSError):
    """A write failed for want of space (or quota); what was finished before is kept.
    Still an ``OSError``, as the failure it replaces."""

    def __init__(self, path):
        super().__init__(f'no space left writing {path}; free space and rerun: finished jobs '
                         'are kept')
        self.path = path
