"""RHVoice synthetic voices for the mini corpus (``--rhvoice true``): one speaker id per recorded person.

Why: a model trained on the MBROLA voices scores poorly on real telephone speech (real_test, 6 of 7
speakers female); RHVoice's HMM voices add 32 more persons (17 female), each built from one person's
recordings, with a more natural voice quality than diphones. They join mini_train and mini_val only,
so mini_test and the real test sets stay byte-identical to a build without them.

Running RHVoice without installing it: ``RHVoice-test`` reads its voices and languages from
``$RHVOICE_DATA_PATH`` and its configuration from ``$RHVOICE_CONFIG_PATH``, and its libraries come from
the tree unpacked by ``local/fetch_debs.sh`` (``LD_LIBRARY_PATH``). Two traps make a wrong label silent:
an unknown profile name (``-p``) falls back to a default voice with exit status 0, and the profile name
is the ``name=`` of the voice's ``voice.info``, not its folder (``Leticia-F123`` is ``Letícia-F123``: by
folder name it silently gave the Albanian voice Hana). So every voice gets a **private data folder
holding only that voice and its language**: whatever the profile, the output can only be that voice.
An output file that is missing or empty (RHVoice even exits 0 when it cannot write) is an error.

Output is 24 kHz; :func:`dmha.corpus.synth.to_16k` resamples it. Rate and pitch are RHVoice's percentages
(100 = the voice's own; values below 50 act as 50).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dmha.common.errors import UserError
from dmha.corpus.synth import run_to_wav, tree_program, with_tree_libraries
from dmha.corpus.voices import split_speakers

# RHVoice language (voice.info "language=") -> the text language of dmha.corpus.text
LANGUAGES = {"English": "en", "Russian": "ru", "Ukrainian": "uk", "Polish": "pl",
             "Brazilian-Portuguese": "pt-br", "Esperanto": "eo", "Kyrgyz": "ky", "Tatar": "tt",
             "Macedonian": "mk", "Albanian": "sq"}

# Programs and libraries RHVoice-test needs (fetched with --with-deps, so a bare machine also gets
# libsonic0, libpulse0 and what they need), then one package per language.
BASE_PACKAGES = ("rhvoice", "librhvoice-core7", "librhvoice-audio2", "libao4", "libportaudio2")

# id  sex  RHVoice language  voice folder(s)  licence  person (from the packages' README/copyright).
# evgeniy: one person in two languages (the Russian voice, the English one for English text).
# Left out: aleksandr (the same recordings as aleksandr-hq). No RHVoice person is an MBROLA voice
# (dmha.corpus.voices) or a real speaker of version 5 (dmha.corpus.real_sources): the CMU ARCTIC and
# RHVoice recordings are not MBROLA databases, and no RHVoice voice is built from festvox-ru (msu_ru_nsh).
_TABLE = """
rhv-slt       f English              slt                      LGPL-2.1+        CMU_ARCTIC_slt
rhv-clb       f English              clb                      LGPL-2.1+        CMU_ARCTIC_clb
rhv-bdl       m English              bdl                      LGPL-2.1+        CMU_ARCTIC_bdl
rhv-alan      m English              alan                     LGPL-2.1+        likely_CMU_ARCTIC_awb
rhv-lyubov    f English              lyubov                   CC-BY-NC-ND-4.0  Lyubov_Sablina
rhv-evgeniy   m Russian              evgeniy-rus,evgeniy-eng  CC-BY-NC-ND-4.0  Evgeny_Chebatkov
rhv-aleksandr m Russian              aleksandr-hq             CC-BY-SA-4.0     Aleksander_Karlov
rhv-anna      f Russian              anna                     LGPL-2.1+        not_named
rhv-elena     f Russian              elena                    LGPL-2.1+        not_named
rhv-irina     f Russian              irina                    LGPL-2.1+        not_named
rhv-arina     f Russian              arina                    CC-BY-NC-ND-4.0  Arina_Syukkya
rhv-tatiana   f Russian              tatiana                  CC-BY-NC-ND-4.0  Tatiana_Kruk
rhv-victoria  f Russian              victoria                 CC-BY-NC-ND-4.0  Natalia_Arsenyeva
rhv-artemiy   m Russian              artemiy                  CC-BY-NC-ND-4.0  Artemy_Lebedev
rhv-mikhail   m Russian              mikhail                  CC-BY-NC-ND-4.0  Mikhail_Sokolov
rhv-pavel     m Russian              pavel                    CC-BY-NC-ND-4.0  Pavel_Klyachenko
rhv-vitaliy   m Russian              vitaliy                  CC-BY-NC-ND-4.0  Vitaliy_Chuvaev
rhv-yuriy     m Russian              yuriy                    CC-BY-NC-ND-4.0  Yuri_Zaborovsky
rhv-anatol    m Ukrainian            anatol                   LGPL-2.1+        not_named
rhv-natalia   f Ukrainian            natalia                  LGPL-2.1+        not_named
rhv-volodymyr m Ukrainian            volodymyr                CC-BY-ND-4.0     Volodymyr_Beglov
rhv-marianna  f Ukrainian            marianna                 CC-BY-ND-4.0     Marianna_Firtka
rhv-magda     f Polish               magda                    CC-BY-NC-ND-4.0  Magda_Roczeń
rhv-natan     m Polish               natan                    CC-BY-NC-ND-4.0  Edwin_Tarka
rhv-leticia   f Brazilian-Portuguese Leticia-F123             CC-BY-SA-4.0     not_named_(F123_project)
rhv-spomenka  f Esperanto            spomenka                 LGPL-2.1+        not_named
rhv-azamat    m Kyrgyz               azamat                   LGPL-2.1+        not_named
rhv-nazgul    f Kyrgyz               nazgul                   LGPL-2.1+        not_named
rhv-talgat    m Tatar                talgat                   no-commercial-use not_named
rhv-kiko      m Macedonian           kiko                     CC-BY-NC-SA-4.0  not_named
rhv-suze      f Macedonian           suze                     CC-BY-NC-ND-4.0  not_named
rhv-hana      f Albanian             hana                     CC-BY-NC-SA-4.0  not_named
"""

# Short texts the probe speaks, in each text family's script (a voice that cannot say it is named).
_PROBE = {"cyrillic": "Бапо деким сорок.", "latin": "Bapo dekim 42."}

# A first guess of seconds per word at rate 100 % (the fit in synth_utterance corrects it).
SEC_PER_WORD_AT_100 = 0.42


@dataclass(frozen=True)
class RHVoiceVoice:
    """One RHVoice person = one speaker id; duck-types :class:`dmha.corpus.voices.Voice` for the builder."""

    db: str                     # speaker id, e.g. rhv-slt
    sex: str
    language: str               # RHVoice language name (voice.info)
    voice_dir: str              # folder under <data>/voices
    english_dir: str = ""       # the same person's English voice, if any
    licence: str = ""
    person: str = ""

    @property
    def lang(self) -> str:
        return LANGUAGES[self.language]

    @property
    def package(self) -> str:
        return f"rhvoice-{self.language.lower()}"

    @property
    def has_english(self) -> bool:
        return bool(self.english_dir)

    @property
    def voice_dirs(self) -> tuple[str, ...]:
        return (self.voice_dir, self.english_dir) if self.english_dir else (self.voice_dir,)

    def engine_voice(self, english: bool) -> str:
        return self.english_dir if english else self.voice_dir

    def sec_per_word(self, rate: int) -> float:
        return SEC_PER_WORD_AT_100 * 100.0 / rate

    def failure_hint(self) -> str:
        return (f"with RHVoice-test voice {self.voice_dir}; leave it out (--rhv-voices) or check the "
                "RHVoice packages under the download dir")


def all_rhvoice_voices() -> list[RHVoiceVoice]:
    """The 32 persons, sorted by speaker id."""
    out = []
    for line in _TABLE.strip().splitlines():
        spk, sex, language, dirs, licence, person = line.split()
        main, _, english = dirs.partition(",")
        out.append(RHVoiceVoice(spk, sex, language, main, english, licence, person.replace("_", " ")))
    return sorted(out, key=lambda v: v.db)


def select_rhvoice_voices(names: list[str] | None) -> list[RHVoiceVoice]:
    """All persons, or the named ones (``rhv-slt`` or ``slt``); unknown names are errors."""
    voices = all_rhvoice_voices()
    if not names:
        return voices
    by_id = {v.db: v for v in voices}
    ids = [n if n.startswith("rhv-") else f"rhv-{n}" for n in names]
    unknown = [n for n, i in zip(names, ids) if i not in by_id]
    if unknown:
        raise UserError(f"unknown RHVoice voice(s) {','.join(unknown)}; known: "
                        f"{','.join(v.db.removeprefix('rhv-') for v in voices)}")
    return [by_id[i] for i in sorted(set(ids))]


def packages(voices: list[RHVoiceVoice]) -> list[str]:
    """Debian packages for these voices: the program, its libraries, one package per language."""
    return list(BASE_PACKAGES) + sorted({v.package for v in voices})


def split_rhvoice(voices: list[RHVoiceVoice], seed: int, n_val: int) -> dict[str, list[str]]:
    """Seeded, sex-stratified, speaker-disjoint train/val split (no test speakers: the test sets stay as
    they are). The shuffle is seeded apart from the MBROLA split's so the two are not correlated."""
    if n_val == 1 or n_val < 0:
        raise UserError(f"--n-rhv-val must be 0 or >= 2 (trials need two speakers), got {n_val}")
    split = split_speakers(voices, seed + 7919, n_test=0, n_val=n_val)
    return {"train": split["train"], "val": split["val"]}


# --- running RHVoice-test -------------------------------------------------------------------------

@dataclass
class RHVoice:
    """Runs ``RHVoice-test`` with one private data folder per voice (module docstring)."""

    binary: str
    env: dict[str, str] = field(default_factory=dict)
    homes: dict[str, tuple[str, str]] = field(default_factory=dict)   # voice folder -> (data path, profile)

    def synthesize(self, text: str, voice: str, rate: int, pitch: int, amplitude: int = 100,
                   tmpdir: str | None = None) -> tuple[np.ndarray, int]:
        """Synthesize ``text`` with the voice folder ``voice``; returns (float32 mono, 24000).

        ``amplitude`` is unused: the level is set later by the augmentation, as for the MBROLA voices.
        RuntimeError (the builder skips that utterance) when no audio comes out.
        """
        if voice not in self.homes:
            raise RuntimeError(f"RHVoice voice {voice} was not set up")
        data_path, profile = self.homes[voice]
        env = dict(self.env, RHVOICE_DATA_PATH=data_path)
        with tempfile.TemporaryDirectory(prefix="dmha-rhv-", dir=tmpdir) as work:
            out = Path(work) / "out.wav"
            cmd = [self.binary, "-p", profile, "-r", str(int(rate)), "-t", str(int(pitch)), "-o", str(out)]
            return run_to_wav(cmd, out, env, f"RHVoice-test -p {profile} ({voice}) gave no audio",
                              text_input=text)


def read_voice_info(path: Path) -> dict[str, str]:
    """``key=value`` lines of a voice.info file."""
    info = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            info[key.strip()] = value.strip()
    return info


def _find_data(tree: Path, sub: str) -> Path:
    """``<root>/<sub>`` in the unpacked tree, else in the system's /usr/share/RHVoice; UserError if absent."""
    for root in (tree / "usr/share/RHVoice", Path("/usr/share/RHVoice")):
        if (root / sub).is_dir():
            return root / sub
    raise UserError(f"RHVoice {sub} not found under {tree}/usr/share/RHVoice (nor /usr/share/RHVoice); "
                    f"its package was not fetched: delete the stamps in {tree}/.fetched and rerun")


def _link_voice_home(tree: Path, home: Path, voice_dir: str, language: str) -> str:
    """Private data folder holding only ``voice_dir`` and its language; returns the profile name.

    The voice must exist and its voice.info must name the expected language, so a renamed or
    repackaged voice stops the build instead of being mislabelled.
    """
    src = _find_data(tree, f"voices/{voice_dir}")
    info_file = src / "voice.info"
    if not info_file.is_file():
        raise UserError(f"{info_file} missing: the RHVoice voice {voice_dir} is incomplete; fetch it again")
    info = read_voice_info(info_file)
    if info.get("language") != language or not info.get("name"):
        raise UserError(f"{info_file}: language {info.get('language')!r}, name {info.get('name')!r}; "
                        f"expected language {language!r} and a name (dmha/corpus/rhvoice.py table)")
    lang_src = _find_data(tree, f"languages/{language}")
    if home.exists():
        shutil.rmtree(home)
    (home / "voices").mkdir(parents=True)
    (home / "languages").mkdir()
    (home / "voices" / voice_dir).symlink_to(src)
    (home / "languages" / language).symlink_to(lang_src)
    return info["name"]


def probe_text(voice: RHVoiceVoice, voice_dir: str) -> str:
    cyrillic = voice_dir != voice.english_dir and voice.lang.split("-")[0] in ("ru", "uk", "ky", "tt", "mk")
    return _PROBE["cyrillic" if cyrillic else "latin"]


def setup_rhvoice(tree: str | Path, home: str | Path, voices: list[RHVoiceVoice]) -> RHVoice:
    """Private data folders under ``home`` for ``voices`` (unpacked by fetch_debs.sh into ``tree``, or
    installed system-wide), then one short probe per voice folder: a voice that cannot speak, or a
    missing library, stops the build naming the voice."""
    tree, home = Path(tree).resolve(), Path(home).resolve()
    binary = tree_program(tree, "RHVoice-test", " ".join(BASE_PACKAGES) + " rhvoice-english")
    env = with_tree_libraries(dict(os.environ), tree)
    # An empty configuration: a user's /etc/RHVoice/RHVoice.conf must not change the corpus.
    (home / "config").mkdir(parents=True, exist_ok=True)
    env["RHVOICE_CONFIG_PATH"] = str(home / "config")
    engine = RHVoice(binary, env)
    for v in voices:
        for d in v.voice_dirs:
            language = "English" if d == v.english_dir else v.language
            profile = _link_voice_home(tree, home / "voices" / d, d, language)
            engine.homes[d] = (str(home / "voices" / d), profile)
    with tempfile.TemporaryDirectory(prefix="dmha-rhv-probe-") as tmp:
        for v in voices:
            for d in v.voice_dirs:
                try:
                    engine.synthesize(probe_text(v, d), d, 100, 100, tmpdir=tmp)
                except (RuntimeError, OSError) as e:
                    raise UserError(f"RHVoice voice {d} ({v.db}) cannot synthesize: {e}") from None
    return engine
