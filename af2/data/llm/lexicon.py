"""Word lists behind the cheap content checks: sound-event concepts, attributes, counts.

``EVENTS`` maps a concept to the words that name it (synonyms share a concept, so a
paraphrase may say "automobile" for "car"); the words are stemmed by ``textcheck.stem`` when
the lookup table is built, so one form of each word is enough. A word that names no concept
here is not checked: the lists favour common AudioSet-style events, not completeness.
"""
from __future__ import annotations

EVENTS = """
man: man men male guy gentleman
woman: woman women female lady
child: child children kid boy girl toddler
baby: baby infant newborn
crowd: crowd people audience group person someone
speech: speech speak talk conversation voice narration narrator chat announcement lecture
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
sing: sing singer song vocal choir chant hum
whistle: whistle
music: music melody tune
guitar: guitar
piano: piano
drum: drum percussion drumbeat
violin: violin fiddle cello
flute: flute
trumpet: trumpet
saxophone: saxophone sax
organ: organ
bell: bell chime
dog: dog puppy canine hound
bark: bark woof yap
growl: growl snarl
howl: howl
cat: cat kitten feline
meow: meow purr
bird: bird songbird
chirp: chirp tweet birdsong warble
rooster: rooster
crow: crow caw
cow: cow cattle
moo: moo
horse: horse pony
neigh: neigh whinny
gallop: gallop clip-clop
sheep: sheep lamb
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
bus: bus
motorcycle: motorcycle motorbike
train: train locomotive
airplane: airplane plane aircraft jet airliner
helicopter: helicopter
boat: boat ship
bicycle: bicycle bike
engine: engine motor
horn: horn honk
siren: siren
traffic: traffic
vehicle: vehicle
screech: screech squeal skid
rain: rain raindrop rainfall drizzle downpour
thunder: thunder thunderstorm thunderclap
wind: wind breeze gust
water: water stream river brook creek trickle
splash: splash
drip: drip
wave: wave surf
fire: fire crackle
door: door
knock: knock
slam: slam
phone: phone telephone ringtone cellphone
ring: ring
alarm: alarm
clock: clock tick
typing: typing typewriter
vacuum: vacuum
blender: blender
dish: dish plate cutlery clink
toilet: toilet flush
faucet: faucet tap sink
hammer: hammer
drill: drill
saw: saw chainsaw
explosion: explosion blast boom
gunshot: gunshot gunfire gun
crash: crash collision
glass: glass shatter
beep: beep bleep
"""

# Concepts that make a sound rather than being one ("a dog barks" is one event, not two).
SOURCES = frozenset("""
man woman child baby crowd dog cat bird rooster cow horse sheep pig duck frog insect bee
""".split())

ATTRIBUTES = """
loud loudly quiet quietly soft softly faint faintly distant far close nearby near
high low deep shrill sharp muffled clear fast quick quickly slow slowly rapid rapidly
steady continuous intermittent repeated brief short long big small large little heavy light
male female young old metallic wooden electronic rhythmic gentle gently harsh squeaky
echoing reverberant strong weak calm angry happy sad excited
"""

NUMBERS = {
    "zero": 0, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "twenty": 20, "dozen": 12,
    "twice": 2, "thrice": 3, "double": 2, "triple": 3, "pair": 2, "couple": 2,
}
# Counts without a number: kept as words. "one", "a", "once" and "single" are left out, so
# that "a dog" and "one dog" read alike.
QUANTITY_WORDS = frozenset({"several", "multiple", "many", "few", "some", "numerous", "various"})

IRREGULAR_PLURALS = frozenset({"men", "women", "children", "people", "geese", "mice", "feet", "sheep", "cattle"})

STOPWORDS = frozenset("""
a an the and or but of in on at to from by with without for as is are was were be been being
it its this that these those there here then than while when after before during until
into onto over under up down out off again also very just can could may might will would
someone something somewhere some any each every all both other another such one once
sound sounds heard hear hearing audio recording clip background foreground followed
""".split())
