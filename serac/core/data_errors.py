"""The error every data loader raises for data it cannot turn into records."""


class DataFormatError(ValueError):
    """A data file is missing, unreadable, or not in the expected format."""
