"""FoleySpace: binaural stems whose source follows the object on screen."""

__version__ = "0.1.0"
