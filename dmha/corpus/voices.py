"""The MBROLA voices of the mini corpus and the deterministic speaker split.

Each MBROLA database is recorded from one real person, so one database is one speaker id (the espeak
``mb-xx-en`` variants reuse a database and are not separate speakers). Sex comes from the Debian package
descriptions; the language picks the text generator (``dmha.corpus.text``). cn1 (espeak cannot drive it),
bz1 and hn1 (no espeak voice) are left out, and so are ar1 and ar2: espeak-ng's phonemes for Arabic text
vary from run to run (7 of 15 sample texts gave different ``--pho`` output in 3 runs), which made two
builds of the corpus differ, in those voices and, through babble noise, in many others. 70 voices remain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dmha.common.errors import UserError

# db sex espeak-language
_TABLE = """
af1 m af    br1 m pt-br br2 f pt-br br3 m pt-br br4 f pt-br ca1 m fr-ca
ca2 m fr-ca cr1 m hr    cz1 f cs    cz2 m cs    de1 f de    de2 m de    de3 f de    de4 m de
de5 f de    de6 m de    de7 f de    de8 m de    ee1 m et    en1 m en-gb es1 m es    es2 m es
es3 f es    es4 m es    fr1 m fr    fr2 f fr    fr3 m fr    fr4 f fr    fr5 m fr-be fr6 m fr
fr7 m fr    gr1 m el    gr2 m el    hb1 m he    hb2 f he    hu1 m hu    ic1 m is    id1 m id
in1 m hi    in2 f hi    ir1 m fa    it1 m it    it2 f it    it3 m it    it4 f it    jp1 m ja
jp2 f ja    jp3 f ja    la1 m la    lt1 m lt    lt2 m lt    ma1 f ms    mx1 m es-mx mx2 m es-mx
nl1 m nl    nl2 m nl    nl3 f nl    nz1 m mi    pl1 f pl    pt1 f pt    ro1 m ro    sw1 m sv
sw2 f sv    tl1 f te    tr1 m tr    tr2 f tr    us1 f en-us us2 m en-us us3 m en-us vz1 m es-vz
"""

# Databases that espeak-ng can also drive in English (voice mb-<db>-en): the same person speaking a
# second language, which keeps the text language from giving the speaker away.
_EN_VARIANTS = frozenset("af1 de1 de2 de3 de4 de5 de6 fr1 fr4 gr2 hu1 nl2 pl1 ro1 sw1 sw2".split())


@dataclass(frozen=True)
class Voice:
    """One MBROLA database = one speaker."""

    db: str      # MBROLA database name (us1, de2, ...): the speaker id
    sex: str     # "m" or "f"
    lang: str    # espeak-ng language of the mb-<db> voice

    @property
    def package(self) -> str:
        return f"mbrola-{self.db}"

    @property
    def espeak_voice(self) -> str:
        return f"mb-{self.db}"

    @property
    def has_english(self) -> bool:
        """espeak-ng has an English voice ``mb-<db>-en`` on this database."""
        return self.db in _EN_VARIANTS

    def engine_voice(self, english: bool) -> str:
        """The espeak-ng voice that speaks this database (its English variant for English text)."""
        return f"{self.espeak_voice}-en" if english else self.espeak_voice

    def sec_per_word(self, rate: int) -> float:
        """First guess of the duration of a word at espeak-ng's ``rate`` (words per minute)."""
        return 60.0 / rate

    def failure_hint(self) -> str:
        """What to do when the voice cannot synthesize (the builder's error names the voice)."""
        return f"with espeak-ng -v {self.espeak_voice}; leave it out (--voices) or check espeak-ng"


def all_voices() -> list[Voice]:
    """The 70 usable voices, sorted by database name."""
    tok = _TABLE.split()
    voices = [Voice(tok[i], tok[i + 1], tok[i + 2]) for i in range(0, len(tok), 3)]
    return sorted(voices, key=lambda v: v.db)


def select_voices(names: list[str] | None) -> list[Voice]:
    """All voices, or the named subset (``--voices us1,de2`` for toy runs); unknown names are errors."""
    voices = all_voices()
    if not names:
        return voices
    by_db = {v.db: v for v in voices}
    unknown = [n for n in names if n not in by_db]
    if unknown:
        raise UserError(f"unknown MBROLA voice(s) {','.join(unknown)}; known: {','.join(sorted(by_db))}")
    return [by_db[n] for n in sorted(set(names))]


def _largest_remainder(total: int, weights: list[int]) -> list[int]:
    """Integers proportional to ``weights`` that sum to ``total`` (Hamilton's method, ties to the first)."""
    w = sum(weights)
    if w == 0 or total == 0:
        return [0] * len(weights)
    exact = [total * x / w for x in weights]
    out = [int(e) for e in exact]
    order = sorted(range(len(weights)), key=lambda k: (-(exact[k] - out[k]), k))
    for k in order[:total - sum(out)]:
        out[k] += 1
    return out


def split_speakers(voices: list[Voice], seed: int, n_test: int | None = None,
                   n_val: int | None = None) -> dict[str, list[str]]:
    """Deterministic, sex-stratified split of the speakers into train/val/test.

    Defaults: 20 % test and 6 % validation speakers (70 voices: 14 test, 4 val, 52 train). The test and
    validation counts are shared between the sexes in proportion to their sizes (largest remainder);
    within each sex the voices are shuffled with ``seed`` and cut test | val | train. The three sets
    are disjoint: validation speakers are never test speakers nor training speakers.
    """
    n = len(voices)
    n_test = int(round(0.2 * n)) if n_test is None else n_test
    n_val = int(round(0.06 * n)) if n_val is None else n_val
    if n_test < 0 or n_val < 0 or n_test + n_val >= n:
        raise UserError(f"cannot split {n} voices into {n_test} test, {n_val} validation "
                        "and >= 1 training speakers")
    groups = {sex: sorted(v.db for v in voices if v.sex == sex) for sex in ("f", "m")}
    sizes = [len(groups["f"]), len(groups["m"])]
    test_counts = _largest_remainder(n_test, sizes)
    val_counts = _largest_remainder(n_val, sizes)
    rng = np.random.default_rng(seed)
    out: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for k, sex in enumerate(("f", "m")):
        group = groups[sex]
        group = [group[i] for i in rng.permutation(len(group))]
        t, v = test_counts[k], val_counts[k]
        out["test"] += group[:t]
        out["val"] += group[t:t + v]
        out["train"] += group[t + v:]
    return {k: sorted(v) for k, v in out.items()}
