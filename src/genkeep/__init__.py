"""genkeep: an AI image-generation studio whose generation tasks are never lost."""

__version__ = "0.1.0"
