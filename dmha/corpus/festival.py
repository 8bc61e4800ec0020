"""Festival and Flite synthetic voices for the mini corpus (``--festival true``): 12 more recorded persons.

Why: the issue on real voices lists three families of synthetic voices built from other real persons
than the MBROLA databases: RHVoice, SVOX Pico and Festival/Flite. The Debian ``festvox-*`` packages hold
11 persons with a working voice that no other source has (English kal, ked, don; Castilian el; Czech
dita, krb, machac, ph; Finnish lj and mv; Catalan ona) and Flite adds one (rms, CMU ARCTIC). Left out:
three voices of persons the MBROLA databases already hold, found by the label check (Resemblyzer
centroid cosine at the within-voice level; README): rab = MBROLA en1 (0.910), the Italian lp = it4
(0.923) and pc = it3 (0.928; it3 is a mini_test speaker: training on pc would leak a test voice); the
Hindi/Marathi/Telugu NSK voices (their language files are not packaged: Festival stops with "could not
open file hindi_phones.scm"); the MBROLA-backed festvox-us1/us2/us3/en1; festvox-us-slt-hts and Flite's
slt, awb and kal (CMU ARCTIC slt and awb are RHVoice's rhv-slt and rhv-alan; Flite's kal is Festival's
kal); festvox-ru (a real speaker of version 5).
They join mini_train and mini_val only; mini_test and the real test sets stay byte-identical.

Running Festival without installing it: ``festival --libdir L --datadir L`` (both are needed) with
``L`` the unpacked ``usr/share/festival``; the libraries come from the unpacked tree
(``LD_LIBRARY_PATH``). The Czech voices name their diphone index by an absolute ``/usr/share`` path in a
``defvar``, so the script defines that variable first, and the Czech lexicon is looked up in the current
directory, so Festival runs with ``L`` as its working directory. ``(Utterance Text ...)`` does not
evaluate its text argument, so the text goes into the script as a string literal (one process per
utterance, ~0.2 s), written in the voice's 8-bit encoding (ISO-8859-2 for Czech, ISO-8859-1 for the
others).

Rate and pitch come as the builder's percent units (100 = the voice's own). Diphone voices: the
``Duration_Stretch`` parameter times 100/rate, and every intonation target's F0 times pitch/100 (the
synthesis modules are run one by one so the targets can be scaled before the waveform is made). The
HTS voice (ona): the engine's ``-r`` speed; its pitch is not varied (the engine's ``-fm`` had no
measurable effect). Flite's rms: ``duration_stretch``; it ignores the F0 target settings, so its pitch is
not varied either.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dmha.common.errors import UserError
from dmha.corpus.synth import run_to_wav, tree_program, with_tree_libraries
from dmha.corpus.voices import split_speakers

# The programs (Festival's lexicons and language packages come with --with-deps).
BASE_PACKAGES = ("festival", "flite")

# id  sex  text language  program  voice  package  licence (its debian/copyright)  person
_TABLE = """
fest-don     m en festival don_diphone        festvox-don           Festival-(X11-like)  not_named
fest-dita    f cs festival czech_dita         festvox-czech-dita    GPL-3+               not_named
fest-el      m es festival el_diphone         festvox-ellpc11k      Festival-(X11-like)  not_named
fest-kal     m en festival kal_diphone        festvox-kallpc16k     Festival-(X11-like)  not_named
fest-krb     m cs festival czech_krb          festvox-czech-krb     GPL-3+               not_named_(a_boy)
fest-ked     m en festival ked_diphone        festvox-kdlpc16k      Festival-(X11-like)  not_named
fest-lj      f fi festival suo_fi_lj_diphone  festvox-suopuhe-lj    LGPL-2+              not_named
fest-machac  m cs festival czech_machac       festvox-czech-machac  GPL-3+               not_named
fest-mv      m fi festival hy_fi_mv_diphone   festvox-suopuhe-mv    LGPL-2+              not_named
fest-ona     f ca festival upc_ca_ona_hts     festvox-ca-ona-hts    LGPL-2.1+            not_named
fest-ph      m cs festival czech_ph           festvox-czech-ph      GPL-2+               not_named
flite-rms    m en flite    rms                flite                 Flite-(BSD-like)     CMU_ARCTIC_rms
"""

# A first guess of seconds per word at rate 100 % (the fit in synth_utterance corrects it).
SEC_PER_WORD_AT_100 = 0.42
PROBE_TEXT = "Bapo dekim 42."


@dataclass(frozen=True)
class FestivalVoice:
    """One Festival/Flite person = one speaker id; duck-types :class:`dmha.corpus.voices.Voice`."""

    db: str
    sex: str
    lang: str
    program: str            # festival | flite
    voice: str              # Festival's voice_<name>, or Flite's -voice name
    package: str
    licence: str = ""
    person: str = ""

    @property
    def has_english(self) -> bool:
        return False

    def engine_voice(self, english: bool) -> str:
        return f"{self.program}:{self.voice}"

    def sec_per_word(self, rate: int) -> float:
        return SEC_PER_WORD_AT_100 * 100.0 / rate

    def failure_hint(self) -> str:
        return (f"with {self.program} voice {self.voice}; check the {self.package} package under the "
                "download dir")


def all_festival_voices() -> list[FestivalVoice]:
    """The 12 persons, sorted by speaker id."""
    out = []
    for line in _TABLE.strip().splitlines():
        spk, sex, lang, program, voice, package, licence, person = line.split()
        out.append(FestivalVoice(spk, sex, lang, program, voice, package, licence.replace("_", " "),
                                 person.replace("_", " ")))
    return sorted(out, key=lambda v: v.db)


def packages(voices: list[FestivalVoice]) -> list[str]:
    """Debian packages: the two programs and the voices' packages (Flite's voices are built in)."""
    return list(BASE_PACKAGES) + sorted({v.package for v in voices} - set(BASE_PACKAGES))


def split_festival(voices: list[FestivalVoice], seed: int, n_val: int) -> dict[str, list[str]]:
    """Seeded, sex-stratified, speaker-disjoint train/val split (no test speakers), seeded apart from the
    MBROLA, RHVoice and Pico splits."""
    if n_val == 1 or n_val < 0 or n_val >= len(voices):
        raise UserError(f"--n-festival-val must be 0 or 2..{len(voices) - 1} (trials need two speakers, "
                        f"training at least one), got {n_val}")
    split = split_speakers(voices, seed + 1299709, n_test=0, n_val=n_val)
    return {"train": split["train"], "val": split["val"]}


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def festival_script(voice: str, text: str, rate: int, pitch: int, out: Path, libdir: Path) -> str:
    """The Scheme program that makes ``voice`` say ``text`` at ``rate``/``pitch`` % into ``out``."""
    lines = []
    if voice.startswith("czech_"):
        short = voice.removeprefix("czech_")
        index = libdir / "voices" / "czech" / voice / "group" / f"{short}.group"
        lines.append(f"(defvar czech-{short}-unisyn-index {_scheme_string(str(index))})")
    lines.append(f"(voice_{voice})")
    text_literal = _scheme_string(text)
    if voice.endswith("_hts"):
        speed = f'(list "-r" {rate / 100.0:.4f})'
        lines += [f"(set! hts_engine_params (append hts_engine_params (list {speed})))",
                  f"(set! dmha_u (utt.synth (Utterance Text {text_literal})))"]
    else:
        stretch = f"(* {100.0 / rate:.4f} (or (Parameter.get 'Duration_Stretch) 1.0))"
        scale_f0 = f'(item.set_feat dmha_tg "f0" (* {pitch / 100.0:.4f} (item.feat dmha_tg "f0")))'
        lines += [
            f"(Parameter.set 'Duration_Stretch {stretch})",
            f"(set! dmha_u (Utterance Text {text_literal}))",
            # utt.synth's module list, with the F0 targets scaled before the waveform is made
            *(f"({m} dmha_u)" for m in ("Initialize", "Text", "Token_POS", "Token", "POS", "Phrasify", "Word",
                                        "Pauses", "Intonation", "PostLex", "Duration", "Int_Targets")),
            f"(mapcar (lambda (dmha_tg) {scale_f0}) (utt.relation.items dmha_u 'Target))",
            "(Wave_Synth dmha_u)",
        ]
    lines.append(f"(utt.save.wave dmha_u {_scheme_string(str(out))} 'riff)")
    return "\n".join(lines) + "\n"


@dataclass
class Festival:
    """Runs Festival (one process per utterance, ``libdir`` as working directory) or Flite."""

    festival: str
    flite: str
    libdir: Path
    env: dict[str, str]

    def synthesize(self, text: str, voice: str, rate: int, pitch: int, amplitude: int = 100,
                   tmpdir: str | None = None) -> tuple[np.ndarray, int]:
        """``text`` spoken by ``voice`` (``festival:<name>`` or ``flite:<name>``); returns (float32, rate).

        ``amplitude`` is unused: the level is set later by the augmentation, as for the other voices.
        RuntimeError (the builder skips that utterance) when no audio comes out.
        """
        program, _, name = voice.partition(":")
        # Festival reads 8-bit text: Czech in ISO-8859-2, the other languages in ISO-8859-1.
        encoding = "iso-8859-2" if name.startswith("czech_") else "iso-8859-1"
        with tempfile.TemporaryDirectory(prefix="dmha-fest-", dir=tmpdir) as work:
            out = Path(work) / "out.wav"
            if program == "flite":
                text_file = Path(work) / "in.txt"
                text_file.write_text(text, encoding="utf-8")
                cmd = [self.flite, "-voice", name, "--setf", f"duration_stretch={100.0 / rate:.4f}",
                       "-f", str(text_file), "-o", str(out)]
                return run_to_wav(cmd, out, self.env, f"flite -voice {name} gave no audio")
            script = Path(work) / "say.scm"
            script.write_bytes(festival_script(name, text, rate, pitch, out, self.libdir)
                               .encode(encoding, errors="replace"))
            lib = f"{self.libdir}/"
            cmd = [self.festival, "--libdir", lib, "--datadir", lib, "-b", str(script)]
            return run_to_wav(cmd, out, self.env, f"festival voice {name} gave no audio", cwd=self.libdir)


def setup_festival(tree: str | Path, voices: list[FestivalVoice]) -> Festival:
    """The engine for the tree unpacked by fetch_debs.sh (or a system Festival), after one short probe
    per voice: a missing voice folder, or a voice that cannot speak, stops the build naming it."""
    tree = Path(tree).resolve()
    libdir = tree / "usr/share/festival"
    if not (libdir / "init.scm").is_file():
        libdir = Path("/usr/share/festival")
    if not (libdir / "init.scm").is_file():
        raise UserError(f"Festival's init.scm not found under {tree}/usr/share/festival nor "
                        f"/usr/share/festival; delete the stamps in {tree}/.fetched and rerun")
    env = with_tree_libraries(dict(os.environ), tree)
    fetch = " ".join(BASE_PACKAGES)
    engine = Festival(tree_program(tree, "festival", fetch), tree_program(tree, "flite", fetch), libdir, env)
    for v in voices:
        if v.program == "festival" and not list(libdir.glob(f"voices/*/{v.voice}")):
            raise UserError(f"Festival voice {v.voice} ({v.db}) not found under {libdir}/voices; its package "
                            f"{v.package} was not fetched: delete its stamp in {tree}/.fetched and rerun")
    with tempfile.TemporaryDirectory(prefix="dmha-fest-probe-") as tmp:
        for v in voices:
            try:
                engine.synthesize(PROBE_TEXT, v.engine_voice(False), 100, 100, tmpdir=tmp)
            except (RuntimeError, OSError) as e:
                raise UserError(f"{v.program} voice {v.voice} ({v.db}) cannot synthesize: {e}") from None
    return engine
