"""dmha — Double Multi-Head Attention speaker verification as a Kaldi-style recipe."""

__version__ = "0.1.0"
