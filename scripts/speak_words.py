"""Speak a set of single words with espeak-ng: one-shots that are not drums.

flowshot is for any one-shot sound; everything else in this project is measured on drums.
This makes a reproducible spoken-word set to train and evaluate on (docs/evaluation.md):
each word in many synthetic voices, pitches and speeds, one WAV per utterance, one folder
per word, so ``flowshot evaluate`` counts and colours by word (a folder's name is the
class when the file name names no drum).

    apt-get install -y --no-install-recommends espeak-ng
    python scripts/speak_words.py -o data/words            # 24 words x 32 = 768 files

The same arguments give the same files (voices, pitches and speeds drawn from ``--seed``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

# Short, common, phonetically varied; none is a drum keyword (class_from_path would
# file "bell" or "click" under perc instead of under its folder).
WORDS = (
    "yes", "no", "go", "stop", "one", "two", "three", "four", "five", "six", "seven", "eight",
    "nine", "zero", "up", "down", "left", "right", "on", "off", "hello", "wow", "ha", "hey",
)
# espeak-ng voice variants: different vocal tracts, breathiness and pitch ranges.
VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
    "adam", "Andy", "Annie", "aunty", "belinda", "boris", "david", "ed", "linda", "max",
    "Michael", "croak", "whisper", "klatt", "klatt2", "klatt3",
)
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp")


def speak(word: str, voice: str, pitch: int, speed: int, path: Path) -> None:
    """One utterance into ``path`` (espeak-ng's own rate, 22,050 Hz mono 16-bit)."""
    cmd = ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", str(path), word]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0 or not path.is_file():
        raise SystemExit(f"speak_words: espeak-ng failed for {word!r} in voice {voice}: {done.stderr.strip()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--out", type=Path, required=True, help="folder to write <word>/<take>.wav into")
    parser.add_argument("--takes", type=int, default=32, help="utterances per word (default 32)")
    parser.add_argument("--seed", type=int, default=0, help="draws the voices, pitches and speeds (default 0)")
    args = parser.parse_args(argv)
    if shutil.which("espeak-ng") is None:
        print("speak_words: espeak-ng is not installed: apt-get install -y --no-install-recommends espeak-ng",
              file=sys.stderr)
        return 2
    rng = np.random.default_rng(args.seed)
    count = 0
    for word in WORDS:
        folder = args.out / word
        folder.mkdir(parents=True, exist_ok=True)
        for take in range(args.takes):
            accent = ACCENTS[rng.integers(len(ACCENTS))]
            variant = VARIANTS[rng.integers(len(VARIANTS))]
            pitch = int(rng.integers(20, 80))
            speed = int(rng.integers(120, 220))
            name = f"take{take:02d}-{variant.lower()}-p{pitch}-s{speed}.wav"
            speak(word, f"{accent}+{variant}", pitch, speed, folder / name)
            count += 1
    print(f"speak_words: {count} utterances of {len(WORDS)} words in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
