"""Chapter: what the book found: every verdict by step of the argument and by kind (``bnlab.findings``), and the test
of our own explanation of the VGG landscape (``bnlab.chapters.landscape.explanation``)."""
from __future__ import annotations

from . import Chapter

CHAPTER = Chapter("findings", computes=("landscape_vgg", "landscape_vgg_long"))
