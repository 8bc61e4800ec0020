"""Kaldi data directories, trial lists and datasets."""
