"""Varied sentences for the synthetic voices, in the voice's language where that is easy.

Speaker verification should not be solvable by the text, and one speaker's utterances should not all
sound alike: every utterance gets its own random text. Eight languages have real word lists
(random word sequences with punctuation, so the prosody varies); the other Latin-script languages get
pronounceable pseudo-words mixed with numbers (espeak-ng applies the language's letter-to-sound rules);
Cyrillic-script languages (the RHVoice voices of Russian, Ukrainian, Kyrgyz, Tatar, Macedonian) get the
same pseudo-words written in Cyrillic, since those voices would spell Latin letters or switch voice;
non-Latin-script voices (Arabic, Greek, Hindi, Farsi, Japanese, Telugu) get digit strings, which
espeak-ng reads as number words of the voice's language (Hebrew gets a Hebrew word list: its MBROLA voices
stay silent on digits).
"""

from __future__ import annotations

import numpy as np

_WORDS = {
    "en": """the a my our this that every small big old new green red quiet loud happy early late
        house river garden window teacher doctor city morning evening market letter music family
        winter summer road table answer question paper story mountain train water coffee
        runs takes brings finds opens watches remembers carries builds sings reads writes waits
        and but because while then today tomorrow never always often slowly quickly together
        seven twelve forty hundred after before under over near with without""",
    "de": """der die das ein eine mein unser dieser jeder kleine große alte neue grüne rote leise
        Haus Fluss Garten Fenster Lehrer Ärztin Stadt Morgen Abend Markt Brief Musik Familie
        Winter Sommer Straße Tisch Antwort Frage Papier Geschichte Berg Zug Wasser Kaffee
        läuft nimmt bringt findet öffnet schaut erinnert trägt baut singt liest schreibt wartet
        und aber weil während dann heute morgen niemals immer oft langsam schnell zusammen
        sieben zwölf vierzig hundert nach vor unter über neben mit ohne""",
    "fr": """le la un une mon notre ce chaque petit grand vieux nouveau vert rouge calme joyeux
        maison rivière jardin fenêtre professeur médecin ville matin soir marché lettre musique
        famille hiver été route table réponse question papier histoire montagne train eau café
        court prend apporte trouve ouvre regarde rappelle porte construit chante lit écrit attend
        et mais parce que pendant puis aujourd'hui demain jamais toujours souvent lentement vite
        ensemble sept douze quarante cent après avant sous sur près avec sans""",
    "es": """el la un una mi nuestro este cada pequeño grande viejo nuevo verde rojo tranquilo
        feliz casa río jardín ventana maestro médica ciudad mañana tarde mercado carta música
        familia invierno verano camino mesa respuesta pregunta papel historia montaña tren agua
        café corre toma trae encuentra abre mira recuerda lleva construye canta lee escribe
        espera y pero porque mientras luego hoy nunca siempre a menudo despacio rápido juntos
        siete doce cuarenta cien después antes bajo sobre cerca con sin""",
    "it": """il la un una mio nostro questo ogni piccolo grande vecchio nuovo verde rosso calmo
        felice casa fiume giardino finestra maestro dottoressa città mattina sera mercato lettera
        musica famiglia inverno estate strada tavolo risposta domanda carta storia montagna treno
        acqua caffè corre prende porta trova apre guarda ricorda costruisce canta legge scrive
        aspetta e ma perché mentre poi oggi domani mai sempre spesso piano presto insieme sette
        dodici quaranta cento dopo prima sotto sopra vicino con senza""",
    "nl": """de het een mijn onze deze elke kleine grote oude nieuwe groene rode stille blije huis
        rivier tuin raam leraar dokter stad ochtend avond markt brief muziek familie winter zomer
        weg tafel antwoord vraag papier verhaal berg trein water koffie loopt neemt brengt vindt
        opent kijkt herinnert draagt bouwt zingt leest schrijft wacht en maar omdat terwijl dan
        vandaag morgen nooit altijd vaak langzaam snel samen zeven twaalf veertig honderd na voor
        onder boven naast met zonder""",
    "pt": """o a um uma meu nosso este cada pequeno grande velho novo verde vermelho calmo feliz
        casa rio jardim janela professor médica cidade manhã tarde mercado carta música família
        inverno verão estrada mesa resposta pergunta papel história montanha trem água café corre
        pega traz encontra abre olha lembra carrega constrói canta lê escreve espera e mas porque
        enquanto depois hoje amanhã nunca sempre muitas vezes devagar depressa juntos sete doze
        quarenta cem após antes sob sobre perto com sem""",
    # Hebrew voices read no digits (silent output), so they get Hebrew words.
    "he": """שלום בית ספר ילד ילדה מים לחם עיר דרך יום לילה בוקר ערב אור שמש ירח ים הר עץ פרח אבא
        אמא אח אחות חבר מורה רופא שולחן כסא חלון דלת מכונית רכבת גדול קטן יפה חדש ישן טוב הולך רואה
        כותב קורא שר אוכל שותה אבל כי היום מחר תמיד עם בלי אחת שתיים שלוש ארבע חמש""",
}
_WORD_LISTS = {k: v.split() for k, v in _WORDS.items()}

_NON_LATIN = {"ar", "el", "hi", "fa", "ja", "te", "zh"}
_CYRILLIC = {"ru", "uk", "ky", "tt", "mk", "be", "bg"}
# One Cyrillic letter per pseudo-word letter: the same draws give the same word in either script.
_TO_CYRILLIC = str.maketrans("bdfgklmnprstvaeiou", "бдфгклмнпрстваеиоу")
_CONSONANTS = list("bdfgklmnprstv")
_VOWELS = list("aeiou")


def word_list(family: str) -> list[str]:
    """The words of a word-list language family (``en``, ``de``, ...), lower-cased."""
    return [w.lower() for w in _WORD_LISTS[family]]


def text_family(lang: str) -> str:
    """Which generator serves a language: a word-list key, ``pseudo``, ``cyrillic`` or ``digits``."""
    base = lang.split("-")[0]
    if base in _WORD_LISTS:
        return base
    if base in _NON_LATIN:
        return "digits"
    if base in _CYRILLIC:
        return "cyrillic"
    return "pseudo"


def _pseudo_word(rng: np.random.Generator) -> str:
    n_syl = int(rng.integers(1, 4))
    syl = []
    for _ in range(n_syl):
        s = str(rng.choice(_CONSONANTS)) + str(rng.choice(_VOWELS))
        if rng.random() < 0.25:
            s += str(rng.choice(_CONSONANTS))
        syl.append(s)
    return "".join(syl)


def _number(rng: np.random.Generator) -> str:
    return str(int(rng.integers(0, 10 ** int(rng.integers(1, 5)))))


def make_text(lang: str, n_words: int, rng: np.random.Generator) -> str:
    """A random sentence of about ``n_words`` words for a voice of language ``lang``.

    Commas and a final '.', '?' or '!' vary the intonation; deterministic given the ``rng`` state.
    """
    n_words = max(1, int(n_words))
    family = text_family(lang)
    words: list[str] = []
    for _ in range(n_words):
        if family == "digits":
            w = _number(rng)
        elif family in ("pseudo", "cyrillic"):
            w = _number(rng) if rng.random() < 0.15 else _pseudo_word(rng)
            w = w.translate(_TO_CYRILLIC) if family == "cyrillic" else w
        else:
            w = str(rng.choice(_WORD_LISTS[family]))
        words.append(w)
    out = []
    for i, w in enumerate(words):
        out.append(w)
        if 0 < i < n_words - 1 and rng.random() < 0.12:
            out[-1] += ","
    end = str(rng.choice([".", ".", ".", "?", "!"]))
    sentence = " ".join(out) + end
    return sentence[0].upper() + sentence[1:]
