"""Signal-level augmentation: reverberation, additive noise, music and babble at a given SNR, speed.

:mod:`dmha.augment.effects`: the effects on waveforms (numpy/scipy; the mini corpus builder of stage 0
varies its synthetic voices with them). :mod:`dmha.augment.spec`: one augmented copy of an utterance as
the options of its wav.scp pipe, and applying them. :mod:`dmha.augment.sources`: the noise, music,
speech and impulse-response files (MUSAN, RIRS_NOISES, any folder). The data-dir level (which copies,
their ids and speakers) is :mod:`dmha.corpus.augmented`.
"""
