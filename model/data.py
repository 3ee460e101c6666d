"""From folders of one-shots (and ``builtin:drums``) to a fixed-length training set.

``load_examples`` turns every source into examples of ``cfg.audio.length`` samples at
``cfg.audio.sample_rate``: mono mix, soxr resampling, leading-silence trim (with a short
pre-roll so the attack is intact), crop with fade-out or zero-pad, normalisation.
Files that cannot make an example are skipped with a reason and listed in one summary
line. Preprocessed examples are cached on disk, keyed by the file's content hash plus
every preprocessing setting, so a second run over the same data takes seconds and a
changed file or setting is recomputed.

The train/validation split is decided per example from a hash of what it is alone, so
adding files never moves an existing file from one side to the other: a file's content
hash, and for ``builtin:drums`` the generator version, set size, seed and index (not the
samples, whose last bits differ between machines and library releases and would move the
split).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from flowshot.errors import FlowshotError
from flowshot.model.audio_io import AUDIO_EXTENSIONS, AudioReadError, read_audio
from flowshot.model.augment import Augmenter
from flowshot.model.config import AudioConfig, FlowshotConfig
from flowshot.model.drums import GENERATOR_VERSION, generate_drums
from flowshot.model.preprocess import PREROLL_MS, SILENCE_DB, SkipFile, normalize, preprocess

BUILTIN_DRUMS = "builtin:drums"

# Bump when the preprocessing code changes meaning, so old cache entries are ignored.
PREPROCESS_VERSION = 1
_SUMMARY_NAMES = 5  # skipped files named in the summary line before "and N more"


@dataclass
class ExampleSet:
    """Preprocessed examples and where they came from.

    Attributes:
        audio: float32 tensor ``[N, L]``.
        classes: one class name per example (builtin generator class, or from the file name).
        names: file paths, or ``builtin:drums/<i>``.
        hashes: sha1 hex of each example's identity (file bytes; for builtin, generator
            version, set size, seed and index), which alone decides the split.
        skipped: ``(path, reason)`` for every file that gave no example.
        val_fraction: share of examples held out by ``val_index``.
        cache_hits: how many examples (files, or whole builtin sets) came from the cache.
        sources: the source strings as given.
    """

    audio: torch.Tensor
    classes: list[str]
    names: list[str]
    hashes: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    val_fraction: float = 0.1
    cache_hits: int = 0
    sources: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)

    def _is_val(self) -> np.ndarray:
        buckets = np.array([_hash_bucket(h) for h in self.hashes], dtype=np.int64)
        is_val = buckets < int(round(self.val_fraction * 1000))
        n = len(buckets)
        if n >= 2 and not is_val.any():
            # Guarantee one validation example; the lowest bucket is the one that a
            # larger fraction would pick first, so the choice stays stable as well.
            is_val[np.lexsort((self.hashes, buckets))[0]] = True
        if n >= 2 and is_val.all():
            is_val[np.lexsort((self.hashes, buckets))[-1]] = False
        return is_val

    def train_index(self) -> list[int]:
        """Indices of training examples (all of them when N == 1)."""
        return [int(i) for i in np.flatnonzero(~self._is_val())]

    def val_index(self) -> list[int]:
        """Indices of validation examples: at least one when N >= 2, none when N == 1."""
        return [int(i) for i in np.flatnonzero(self._is_val())]


def _hash_bucket(hex_digest: str) -> int:
    return int(hex_digest, 16) % 1000


class OneShotDataset(torch.utils.data.Dataset):
    """Torch dataset over some examples of an :class:`ExampleSet`.

    Args:
        examples: the loaded set.
        indices: which rows to use (e.g. ``examples.train_index()``).
        augment: applied to every item when given.

    Items are float32 tensors ``[1, L]``, or ``[2, L]`` with ``augment`` (what the encoder
    hears, then the reconstruction target; see ``Augmenter``). The augmentation's
    ``np.random.Generator`` is seeded per item from torch's default generator, which
    torch seeds differently in every data-loader worker and every epoch, and
    ``seed_everything`` makes reproducible.
    """

    def __init__(self, examples: ExampleSet, indices: Iterable[int], augment: Augmenter | None = None) -> None:
        self.audio = examples.audio
        self.indices = [int(i) for i in indices]
        self.augment = augment

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> torch.Tensor:
        x = self.audio[self.indices[item]]
        if self.augment is not None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
            return torch.from_numpy(self.augment(x.numpy(), np.random.default_rng(seed)))
        return x.reshape(1, -1).to(torch.float32)


# ----------------------------------------------------------------------------- classes

# (class, exact tokens, substrings), tried in this order on the file name, then on the
# parent folder: specific instruments first, so "snare rim" is a rim and "ride bell" a ride.
_CLASS_RULES: tuple[tuple[str, frozenset[str], tuple[str, ...]], ...] = (
    ("rim", frozenset({"rim", "rims", "rs", "rimshot", "sidestick", "xstick", "stick"}), ("rimshot", "sidestick")),
    ("clap", frozenset({"clap", "claps", "cp", "handclap", "snap", "fingersnap"}), ("clap", "fingersnap")),
    ("crash", frozenset({"crash", "cr", "cra", "cc"}), ("crash",)),
    ("ride", frozenset({"ride", "rd", "rc"}), ()),
    ("cymbal", frozenset({"cym", "cymbal", "cymbals", "cy", "splash", "china", "spl"}), ("cymbal", "splash", "china")),
    ("hat", frozenset({"hh", "hat", "hats", "hihat", "hhat", "chh", "ohh", "phh", "hhc", "hho", "hhp", "ho"}),
     ("hihat", "hat", "hhopen", "hhclosed", "hhpedal")),
    ("tom", frozenset({"tom", "toms", "tm", "ht", "mt", "lt", "ft", "tomh", "toml", "tomm", "floortom"}), ("tom",)),
    ("snare", frozenset({"snare", "snares", "sn", "sd", "snr"}), ("snare",)),
    ("kick", frozenset({"kick", "kicks", "kik", "bd", "kck", "k", "bassdrum"}), ("kick", "bassdrum")),
    (
        "perc",
        frozenset({"perc", "conga", "bongo", "shaker", "shake", "cowbell", "cb", "tamb", "clave", "claves", "block",
                   "cabasa", "guiro", "maraca", "maracas", "triangle", "agogo", "timbale", "timbales", "bell", "tabla",
                   "djembe", "cajon", "click"}),
        ("perc", "conga", "bongo", "shaker", "cowbell", "tambourine", "clave", "maraca", "djembe", "cajon"),
    ),
)
_OPEN_HAT = frozenset({"open", "op", "ohh", "oh", "o", "hho", "ho"})
_CLOSED_HAT = frozenset({"closed", "close", "cl", "chh", "ch", "c", "pedal", "ph", "phh", "hhc", "hhp"})


def _tokens(name: str) -> list[str]:
    """``"EE_Hat_OpDirty-2"`` -> ``["ee", "hat", "op", "dirty", "2"]``."""
    name = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    name = re.sub(r"([A-Za-z])(\d)", r"\1 \2", name)
    name = re.sub(r"(\d)([A-Za-z])", r"\1 \2", name)
    return [t for t in re.split(r"[^a-z0-9]+", name.lower()) if t]


def _class_of_name(name: str) -> str | None:
    tokens = _tokens(name)
    token_set = set(tokens)
    joined = "".join(tokens)

    def contains(word: str) -> bool:
        # Short words only as a token's start ("tom1" yes, "bottom" no); long ones anywhere ("jsnare").
        return any(t.startswith(word) or (len(word) >= 5 and word in t) for t in tokens)

    for cls, exact, substrings in _CLASS_RULES:
        if token_set & exact or any(contains(s) for s in substrings) or (cls == "kick" and "bass drum" in " ".join(tokens)):
            if cls == "hat":
                if token_set & _OPEN_HAT or "open" in joined:
                    return "hat_open"
                if token_set & _CLOSED_HAT or "closed" in joined or "pedal" in joined:
                    return "hat_closed"
            return cls
    return None


def class_from_path(path: str | os.PathLike[str]) -> str:
    """Instrument class from keywords in the file name, else the parent folder's, else the parent folder name."""
    p = Path(path)
    return _class_of_name(p.stem) or _class_of_name(p.parent.name) or (p.parent.name.lower() or "unknown")


# ----------------------------------------------------------------------------- cache


def default_cache_dir() -> Path:
    """``$FLOWSHOT_CACHE`` if set, else ``~/.cache/flowshot``."""
    env = os.environ.get("FLOWSHOT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "flowshot"


def _settings_key(cfg: AudioConfig) -> str:
    settings = {**asdict(cfg), "version": PREPROCESS_VERSION, "preroll_ms": PREROLL_MS, "silence_db": SILENCE_DB}
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()


class _Cache:
    """Preprocessed examples under ``<root>/examples/<settings>/<key[:2]>/``.

    A usable file is one ``<key>.npy`` (float32 ``[L]``; plain ``.npy`` loads about ten
    times faster than ``.npz``), an unusable one a ``<key>.skip`` text file holding the
    reason, and a whole generated set one ``<key>.npz``. Every write goes to a temporary
    file in the same folder and is renamed into place, so a crash never leaves half a file.
    """

    def __init__(self, root: Path, settings: str, length: int) -> None:
        self.dir = root / "examples" / settings[:16]
        self.length = length

    def _path(self, key: str, suffix: str) -> Path:
        return self.dir / key[:2] / f"{key}{suffix}"

    def load_example(self, key: str) -> np.ndarray | str | None:
        """The cached example ``[L]``, the cached skip reason, or None (not cached / damaged)."""
        try:
            x = np.load(self._path(key, ".npy"), allow_pickle=False)
            if x.shape == (self.length,) and x.dtype == np.float32:
                return x
        except Exception:  # noqa: BLE001 - missing, truncated or foreign file: recompute it
            pass
        try:
            return self._path(key, ".skip").read_text(encoding="utf-8").strip() or None
        except OSError:
            return None

    def save_example(self, key: str, result: np.ndarray | str) -> None:
        if isinstance(result, str):
            self._write(self._path(key, ".skip"), result.encode("utf-8"))
        else:
            buf = io.BytesIO()
            np.save(buf, np.ascontiguousarray(result, dtype=np.float32))
            self._write(self._path(key, ".npy"), buf.getvalue())

    def load_set(self, key: str) -> dict[str, np.ndarray] | None:
        try:
            with np.load(self._path(key, ".npz"), allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except Exception:  # noqa: BLE001 - as above
            return None

    def save_set(self, key: str, **arrays: np.ndarray) -> None:
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        self._write(self._path(key, ".npz"), buf.getvalue())

    @staticmethod
    def _write(path: Path, payload: bytes) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(payload)
                os.replace(tmp, path)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
        except OSError:
            # A read-only or full cache only costs speed next time, never the run.
            pass


def _sha1_file(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------- sources


def _expand_sources(sources: list[str]) -> list[str | Path]:
    """Sources -> ``BUILTIN_DRUMS`` markers and audio file paths (folders searched recursively, sorted)."""
    items: list[str | Path] = []
    for src in sources:
        if src.startswith("builtin:"):
            if src != BUILTIN_DRUMS:
                raise FlowshotError(f"unknown built-in data set {src!r}; the built-in set is {BUILTIN_DRUMS!r}")
            items.append(BUILTIN_DRUMS)
            continue
        p = Path(src).expanduser()
        if p.is_dir():
            items.extend(
                f
                for f in sorted(p.rglob("*"))
                if f.is_file() and f.suffix.lower().lstrip(".") in AUDIO_EXTENSIONS and not f.name.startswith(".")
            )
        elif p.is_file():
            items.append(p)
        else:
            raise FlowshotError(f"data source {src!r} is not a file or folder; give audio files, folders or {BUILTIN_DRUMS}")
    return items


def _load_builtin(cfg: FlowshotConfig, cache: _Cache, settings: str) -> tuple[np.ndarray, list[str], bool]:
    a, t = cfg.audio, cfg.train
    key = hashlib.sha1(
        f"{BUILTIN_DRUMS}|v{GENERATOR_VERSION}|{t.builtin_size}|{a.sample_rate}|{a.length}|{t.data_seed()}|{settings}".encode()
    ).hexdigest()
    hit = cache.load_set(key)
    if hit is not None and "audio" in hit and "classes" in hit:
        return hit["audio"], [str(c) for c in hit["classes"]], True
    audio, classes = generate_drums(t.builtin_size, a.sample_rate, a.length, t.data_seed())
    audio = np.stack([normalize(x.astype(np.float64), a).astype(np.float32) for x in audio]) if len(audio) else audio
    cache.save_set(key, audio=audio, classes=np.array(classes, dtype=str))
    return audio, classes, False


def _builtin_identity(cfg: FlowshotConfig, index: int) -> str:
    # Not the samples' hash: their last bits differ between machines and library releases,
    # which would move the split, and two machines' results would not be on the same test
    # sounds. Not the sample rate or length either, so a tiny config holds out the same ones.
    t = cfg.train
    return hashlib.sha1(f"{BUILTIN_DRUMS}|v{GENERATOR_VERSION}|{t.builtin_size}|{t.data_seed()}|{index}".encode()).hexdigest()


def load_examples(
    sources: list[str],
    cfg: FlowshotConfig,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> ExampleSet:
    """Load, preprocess (or fetch from the cache) and collect every example of ``sources``.

    Args:
        sources: audio files, folders (searched recursively) and/or ``"builtin:drums"``.
        cfg: ``cfg.audio`` says how files become examples; ``cfg.train`` gives the
            built-in set's size and seed, and the validation fraction.
        cache_dir: where preprocessed examples live (default :func:`default_cache_dir`).
        progress: show a progress bar while files are processed.

    Returns:
        An :class:`ExampleSet` with ``audio`` ``[N, cfg.audio.length]``.

    Raises:
        FlowshotError: a source does not exist, or no source gave a usable example.
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [str(sources)]
    sources = [str(s) for s in sources]
    if not sources:
        raise FlowshotError(f"no data sources given; pass audio files, folders or {BUILTIN_DRUMS}")
    settings = _settings_key(cfg.audio)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    cache = _Cache(root, settings, cfg.audio.length)
    items = _expand_sources(sources)

    rows: list[np.ndarray] = []
    classes: list[str] = []
    names: list[str] = []
    hashes: list[str] = []
    skipped: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    hits = 0
    files = [it for it in items if isinstance(it, Path)]

    console = Console(stderr=True)
    with Progress(
        TextColumn("[bold]preparing data"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not progress or not files,
        transient=True,
    ) as bar:
        task = bar.add_task("files", total=len(files))
        for item in items:  # in the order of the sources, so indices follow the command line
            if not isinstance(item, Path):
                audio, cls, hit = _load_builtin(cfg, cache, settings)
                hits += int(hit)
                rows.extend(audio)
                classes.extend(cls)
                names.extend(f"{BUILTIN_DRUMS}/{i}" for i in range(len(audio)))
                hashes.extend(_builtin_identity(cfg, i) for i in range(len(audio)))
                continue
            bar.advance(task)
            name = str(item)
            try:
                digest = _sha1_file(item)
            except OSError as err:
                skipped.append((name, f"cannot open ({err.strerror or err})"))
                continue
            if digest in seen:
                skipped.append((name, f"duplicate of {seen[digest]}"))
                continue
            key = hashlib.sha1(f"{digest}|{settings}".encode()).hexdigest()
            result = cache.load_example(key)
            if result is not None:
                hits += 1
            else:
                result = _process_file(item, cfg.audio)
                cache.save_example(key, result)
            if isinstance(result, str):
                skipped.append((name, result))
                continue
            seen[digest] = name
            rows.append(result)
            classes.append(class_from_path(item))
            names.append(name)
            hashes.append(digest)

    n_builtin = sum(name.startswith(BUILTIN_DRUMS) for name in names)
    _print_summary(console, len(rows), n_builtin, len(files), hits, skipped)
    if not rows:
        first = f", e.g. {Path(skipped[0][0]).name}: {skipped[0][1]}" if skipped else ""
        raise FlowshotError(
            f"no usable audio in {', '.join(sources)} ({len(files)} audio files, {len(skipped)} skipped{first}); "
            f"give folders of one-shot WAV/FLAC files or {BUILTIN_DRUMS}"
        )
    return ExampleSet(
        audio=torch.from_numpy(np.stack(rows).astype(np.float32)),
        classes=classes,
        names=names,
        hashes=hashes,
        skipped=skipped,
        val_fraction=cfg.train.val_fraction,
        cache_hits=hits,
        sources=sources,
    )


def _process_file(path: Path, cfg_audio: AudioConfig) -> np.ndarray | str:
    """Read and preprocess one file: the example ``[L]``, or the reason it gives none."""
    try:
        audio, sr = read_audio(path)
        return preprocess(audio, sr, cfg_audio)
    except AudioReadError as err:
        return _short_reason(str(err), path)
    except SkipFile as err:
        return str(err)


def _short_reason(message: str, path: Path) -> str:
    """Drop the leading path and the advice from an ``AudioReadError`` message; the summary names the file."""
    prefix = f"{path}: "
    msg = message[len(prefix) :] if message.startswith(prefix) else message
    return msg.split(";")[0]


def _print_summary(console: Console, n: int, n_builtin: int, n_files: int, hits: int, skipped: list[tuple[str, str]]) -> None:
    parts = [f"{n_builtin} built-in"] if n_builtin else []
    parts += [f"{n_files} audio files"] if n_files or not n_builtin else []
    parts.append(f"{hits} cached")
    line = f"data: {n} examples ({', '.join(parts)})"
    if skipped:
        named = ", ".join(f"{Path(p).name} ({r})" for p, r in skipped[:_SUMMARY_NAMES])
        more = f" and {len(skipped) - _SUMMARY_NAMES} more" if len(skipped) > _SUMMARY_NAMES else ""
        line += f"; skipped {len(skipped)}: {named}{more}"
    console.print(line, markup=False, highlight=False, soft_wrap=True)
