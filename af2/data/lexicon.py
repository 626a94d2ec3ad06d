"""The one lexicon of sound events, attributes and counts, and how a text is read against it.

Both sides of hard-negative data use it: the rule-based generator (:mod:`af2.data.negatives`)
rewrites captions with these words, and the checks of generated text (:mod:`af2.data.llm.checks`,
through :mod:`af2.data.llm.textcheck`) read texts with them, so a rewrite the generator makes is
one the checks recognise.

``EVENTS`` maps a concept to the words that name it (synonyms share a concept, so a
paraphrase may say "automobile" for "car"); the words are stemmed by :func:`stem` when
the lookup table is built, so one form of each word is enough (irregular plurals are listed).
A word that names no concept here is not checked: the lists favour common AudioSet-style
events, not completeness. ``SIMILAR_SOURCES`` / ``SIMILAR_ACTIONS`` are the generator's
substitution groups: every word in them is an ``EVENTS`` word, and the words of one group name
different concepts (a substitute is another event, never a synonym).
"""

from __future__ import annotations

import re
from functools import lru_cache

EVENTS = """
man: man men male guy gentleman
woman: woman women female lady
child: child children kid boy girl toddler
baby: baby infant newborn
crowd: crowd people audience group person someone
speech: speech speak talk conversation voice narration narrator chat announcement lecture
argue: argue argument
whisper: whisper
shout: shout yell holler
scream: scream shriek
laugh: laugh laughter giggle chuckle
cry: cry sob weep wail whimper
cough: cough
sneeze: sneeze
breath: breath breathe pant gasp
snore: snore
footstep: footstep step walk stomp
clap: clap applause applaud
cheer: cheer
sing: sing singer song vocal choir chant
hum: hum
whistle: whistle
music: music melody tune
guitar: guitar
piano: piano
drum: drum percussion drumbeat
violin: violin fiddle
viola: viola
cello: cello
harpsichord: harpsichord
keyboard: keyboard
banjo: banjo
ukulele: ukulele
piccolo: piccolo
recorder: recorder
trombone: trombone
tambourine: tambourine
cymbal: cymbal
metronome: metronome
flute: flute
trumpet: trumpet
saxophone: saxophone sax
organ: organ
bell: bell chime
dog: dog puppy canine hound
wolf: wolf wolves
fox: fox
coyote: coyote
bark: bark woof yap
growl: growl snarl
whine: whine
howl: howl
cat: cat kitten feline
meow: meow
purr: purr
hiss: hiss
bird: bird songbird
pigeon: pigeon dove
seagull: seagull gull
chirp: chirp tweet birdsong warble
squawk: squawk
rooster: rooster
hen: hen chicken
crow: crow caw
cow: cow cattle
bull: bull
ox: ox oxen
moo: moo
horse: horse pony
neigh: neigh whinny
gallop: gallop clip-clop
sheep: sheep lamb
goat: goat
bleat: bleat baa
pig: pig hog
oink: oink grunt
duck: duck
quack: quack
frog: frog toad
croak: croak ribbit
insect: insect cricket cicada
bee: bee wasp
buzz: buzz drone
car: car automobile sedan
truck: truck lorry
van: van
bus: bus
motorcycle: motorcycle motorbike
train: train locomotive
tram: tram streetcar
subway: subway metro
airplane: airplane plane aircraft jet airliner
helicopter: helicopter
boat: boat ship
bicycle: bicycle bike
engine: engine motor
generator: generator
accelerate: accelerate
brake: brake
horn: horn honk
siren: siren
traffic: traffic
vehicle: vehicle
screech: screech squeal skid
rain: rain raindrop rainfall drizzle downpour
hail: hail hailstorm
thunder: thunder thunderstorm thunderclap
wind: wind breeze gust
water: water stream river brook creek trickle
splash: splash
drip: drip
wave: wave surf
fire: fire crackle
door: door
window: window
gate: gate
creak: creak
knock: knock
bang: bang
slam: slam
phone: phone telephone ringtone cellphone
ring: ring
doorbell: doorbell
alarm: alarm
clock: clock tick
timer: timer
typing: typing typewriter
vacuum: vacuum
blender: blender
dish: dish plate cutlery clink
toilet: toilet flush
faucet: faucet tap sink
hammer: hammer
mallet: mallet
drill: drill
saw: saw chainsaw
explosion: explosion blast boom
gunshot: gunshot gunfire gun
crash: crash collision
glass: glass shatter
beep: beep bleep
"""

# Concepts that make a sound rather than being one ("a dog barks" is one event, not two).
SOURCES = frozenset(
    """
man woman child baby crowd dog cat bird rooster cow horse sheep pig duck frog insect bee
""".split()
)

# How a sound is (or is made): the words swap_attributes exchanges between two events and the
# checks look for. A hyphenated word is one attribute ("high-pitched" is not "high").
ATTRIBUTES = tuple(
    """
loud loudly quiet quietly soft softly faint faintly distant far close nearby near
high low high-pitched low-pitched deep shrill sharp dull muffled clear fast quick quickly slow
slowly rapid rapidly steady continuous intermittent repeated brief short long big small large
little heavy light male female young old metallic wooden electronic rhythmic gentle gently harsh
squeaky echoing reverberant strong weak calm angry happy sad excited
""".split()
)

# Substitution groups of the generator (see the module docstring).
SIMILAR_SOURCES = (
    ("dog", "wolf", "fox", "coyote"),
    ("bird", "crow", "pigeon", "seagull"),
    ("cow", "bull", "ox"),
    ("rooster", "hen"),
    ("sheep", "goat"),
    ("car", "truck", "van", "motorcycle", "bus"),
    ("train", "tram", "subway"),
    ("airplane", "helicopter"),
    ("piano", "harpsichord", "keyboard"),
    ("guitar", "banjo", "ukulele"),
    ("violin", "viola", "cello"),
    ("flute", "piccolo", "recorder"),
    ("trumpet", "trombone", "horn"),
    ("drum", "tambourine", "cymbal"),
    ("man", "woman", "child"),
    ("baby", "child"),
    ("door", "window", "gate"),
    ("doorbell", "phone", "alarm", "bell"),
    ("clock", "timer", "metronome"),
    ("rain", "hail"),
    ("thunder", "explosion", "gunshot"),
    ("wave", "stream"),
    ("engine", "generator"),
    ("siren", "horn", "whistle"),
    ("hammer", "mallet"),
    ("saw", "drill"),
)
SIMILAR_ACTIONS = (
    ("barks", "howls", "growls", "whines"),
    ("meows", "purrs", "hisses"),
    ("sings", "hums", "whistles"),
    ("speaks", "shouts", "whispers", "laughs"),
    ("talks", "argues"),
    ("rings", "beeps", "buzzes", "chimes"),
    ("honks", "accelerates", "brakes"),
    ("knocks", "taps", "bangs"),
    ("claps", "cheers"),
    ("cries", "screams", "giggles"),
    ("chirps", "squawks"),
    ("slams", "creaks"),
)

# Number words by value (change_count writes them; counts read them).
NUMBER_WORDS = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
)
NUMBERS = {
    **{w: k for k, w in enumerate(NUMBER_WORDS) if w != "one"},
    "twenty": 20,
    "dozen": 12,
    "twice": 2,
    "thrice": 3,
    "double": 2,
    "triple": 3,
    "pair": 2,
    "couple": 2,
}
# Counts without a number: kept as words. "one", "a", "once" and "single" are left out, so
# that "a dog" and "one dog" read alike.
QUANTITY_WORDS = frozenset({"several", "multiple", "many", "few", "some", "numerous", "various"})

IRREGULAR_PLURALS = frozenset(
    {"men", "women", "children", "people", "geese", "mice", "feet", "sheep", "cattle", "oxen"}
)

STOPWORDS = frozenset(
    """
a an the and or but of in on at to from by with without for as is are was were be been being
it its this that these those there here then than while when after before during until
into onto over under up down out off again also very just can could may might will would
someone something somewhere some any each every all both other another such one once
sound sounds heard hear hearing audio recording clip background foreground followed
""".split()
)


# -- reading a text against the lexicon ----------------------------------------------------
_WORD = re.compile(r"[a-z0-9]+(?:[.'-][a-z0-9]+)*")


def normalize(text: str) -> str:
    """Lower case, words only (hyphenated words kept whole), single spaces."""
    return " ".join(_WORD.findall(text.lower().replace("'", "")))


def words(text: str) -> list[str]:
    """The words of ``text``, hyphenated words split."""
    return normalize(text).replace("-", " ").split()


def stem(word: str) -> str:
    """A crude suffix stripper, consistent enough that word forms of one event meet."""
    w = word.lower()
    for suffix, repl in (("ies", "y"), ("ied", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if w.endswith(suffix) and len(w) - len(suffix) + len(repl) >= 3 and not w.endswith("ss"):
            w = w[: len(w) - len(suffix)] + repl
            break
    if w.endswith("e") and len(w) > 3:
        w = w[:-1]
    if len(w) > 3 and w[-1] == w[-2]:
        w = w[:-1]
    return w


@lru_cache(maxsize=1)
def tables() -> tuple[dict, frozenset]:
    """(stemmed event word -> concept, stemmed attributes). Raises ValueError when a word
    names two concepts."""
    events: dict[str, str] = {}
    for line in EVENTS.strip().splitlines():
        concept, names = line.split(":")
        for name in names.split():
            key = stem(name.replace("-", ""))
            if events.setdefault(key, concept) != concept:
                raise ValueError(f"lexicon: {name!r} names both {events[key]!r} and {concept!r}")
    return events, frozenset(stem(w) for w in ATTRIBUTES)


def event_sequence(text: str) -> list[str]:
    """Sound-event concepts in the order they are first named."""
    table, seen = tables()[0], []
    for w in words(text):
        concept = table.get(stem(w))
        if concept and concept not in seen:
            seen.append(concept)
    return seen


def events(text: str) -> set[str]:
    return set(event_sequence(text))


def event_count(text: str) -> int:
    """About how many sound events: sources and sounds pair up ("a dog barks" is one)."""
    found = events(text)
    sources = len(found & SOURCES)
    return max(sources, len(found) - sources)


def attributes(text: str) -> list[str]:
    """The stemmed attribute words of ``text``, in order; a hyphenated word counts whole when it
    is an attribute ("high-pitched"), else by its parts ("light-hearted": "light")."""
    table, out = tables()[1], []
    for token in normalize(text).split():
        parts = [token] if stem(token) in table else token.split("-")
        out += [stem(p) for p in parts if stem(p) in table]
    return out
