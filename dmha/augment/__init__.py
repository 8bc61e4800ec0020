"""Signal-level augmentation: reverberation, additive noise and babble at a given SNR, telephone band.

Pure numpy on waveforms; reads and writes nothing itself. The mini corpus builder (stage 0) uses it to
vary its synthetic voices. Open first: :mod:`dmha.augment.effects`.
"""
