"""One typed settings tree: defaults < ragpipe.toml < RAGPIPE_* environment < explicit overrides.

Keys are ``section.name``; in the environment they are ``RAGPIPE_SECTION_NAME``
(e.g. ``RAGPIPE_LLM_N_CTX=4096``). Relative paths are resolved against the
folder of the ragpipe.toml that was read, or the working directory.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .access import folder_rules
from .errors import ConfigError
from .privacy import is_trusted_entry

# Settings that take one of a fixed set of values: checked when settings load (the message
# lists the values), and the single list the code that reads them uses.
RetrievalMode = Literal["dense", "bm25", "hybrid"]
Fusion = Literal["convex", "rrf"]
AnswerStyle = Literal["compose", "extract", "free"]
Rewrite = Literal["heuristic", "model", "off"]
Backend = Literal["llama_cpp", "openai"]
SummaryStyle = Literal["brief", "detailed", "bullets"]
Unsupported = Literal["flag", "drop"]
Rollup = Literal["set", "folders", "off"]


@dataclass
class PathSettings:
    """Where indexes and prepared model files live."""

    indexes: Path = Path("indexes")
    models: Path = Path("models")


@dataclass
class EmbedderSettings:
    """The sentence-transformers model: 'minilm' (packaged default) or a local model folder."""

    model: str = "minilm"
    batch_size: int = 32
    # Window of the model in tokens; 0 = read it from the model (max_seq_length).
    max_tokens: int = 0
    # Documents' vectors: "int8" (the model's int8 export under ONNX Runtime, README: Speed),
    # "fp32", or "auto": what an existing index recorded, int8 for a new one when the model
    # allows. Questions are embedded at float32 either way.
    precision: str = "auto"


@dataclass
class ChunkSettings:
    """Chunk size and overlap, in tokens of the embedder's tokenizer."""

    size: int = 200
    overlap: int = 32


@dataclass
class LLMSettings:
    """The answer model and where it runs (README: Models and runtimes).

    ``llama_cpp``: ``model`` is a catalogue name (``ragpipe models list``) or a GGUF path, run
    in this process. ``openai``: ``model`` is the name a server at ``base_url`` (its OpenAI
    API root) knows it by: llama-server, Ollama, LM Studio, vLLM or a hosted API.
    """

    backend: Backend = "llama_cpp"
    model: str = "qwen2.5-coder-0.5b"
    n_ctx: int = 4096  # the server's context size for "openai"
    threads: int = 0  # 0 = number of CPU cores
    max_tokens: int = 384
    temperature: float = 0.0
    seed: int = 42
    base_url: str = "http://127.0.0.1:8080/v1"
    api_key_env: str = ""  # environment variable holding the server's API key ("" = none)
    timeout_s: float = 120.0  # longest wait for the server's next bytes
    retries: int = 2  # more tries when the server cannot be reached or is busy
    slots: int = 1  # answers the model runs at once: a server's parallel slots (in-process: 1)


@dataclass
class RetrievalSettings:
    """How passages are found (see retrieval.py) and how many go into a prompt."""

    top_k: int = 4
    # Drop hits whose dense cosine similarity is below this (keyword score in bm25 mode).
    min_score: float = 0.0
    mode: RetrievalMode = "hybrid"
    fusion: Fusion = "convex"  # convex (min-max normalized scores) | rrf
    keyword_weight: float = 0.4  # keyword share of the convex fusion (tuned on held-out data)
    # Past ann_threshold chunks, query terms found in more than this share of chunks are left
    # out of the keyword query (speed; they weigh little in BM25). 1 = never.
    keyword_max_df: float = 0.2
    rrf_k: int = 60
    candidates: int = 100  # taken from each of dense and keyword search before fusing
    dedup: float = 0.8  # collapse chunks whose word-trigram Jaccard is at least this; 0 = off
    neighbours: int = 0  # adjacent chunks added on each side of a hit, for context
    ann_threshold: int = 50_000  # chunks from which the vector index is IVF, not exact
    nprobe: int = 0  # IVF lists scanned per query; 0 = the tuned value stored in the index (64)


@dataclass
class AnswerSettings:
    """How answers are asked for, checked and withheld (README: Grounded answers)."""

    # "compose": the passages' own sentences, lists and rows that answer (compose.py);
    # "extract": a phrase copied from the best passage; "free": brief prose by the model.
    style: AnswerStyle = "compose"
    passages: int = 0  # best passages answered from (0 = retrieval.top_k)
    check: bool = True  # check citations and withhold answers that fail the calibration
    judge: bool = True  # ask the model whether its answer holds (one short extra turn)
    min_confidence: float = -1.0  # answer when P(grounded) >= this; -1 = the calibrated default
    # Say "not found" without asking the model when no passage holds this share of the
    # question's content words, each weighted by its rarity in the index (grounding.
    # question_coverage; 0.12: SQuAD v2 answerable questions were all at 0.17 or more).
    min_question_coverage: float = 0.12
    # "compose": say "not found" when no sentence of the passages scores this close to the
    # question (compose.score_units; README: Answers employees can use).
    min_unit_score: float = 0.25
    rewrite: Rewrite = "heuristic"  # how follow-ups are made standalone (followup.py)
    history_turns: int = 2  # earlier question/answer pairs kept in the prompt
    max_question_chars: int = 2000  # longer questions are refused (a prompt is not a document)


@dataclass
class IngestSettings:
    """Limits and patterns for walking and reading folders."""

    max_file_mb: float = 100.0
    skip: tuple[str, ...] = (".*", "~$*", "~*", "*.tmp", "*.swp", "Thumbs.db", "desktop.ini")
    workers: int = 0  # reader processes; 0 = one per CPU core
    timeout_s: float = 300.0  # wall-clock limit for parsing one file (OCR included)
    memory_mb: int = 2048  # address-space cap of each reader process
    ocr: bool = True  # OCR scanned PDF pages when the tesseract binary is installed
    ocr_lang: str = "eng"  # Tesseract language(s), e.g. "eng+deu"
    # A sync that would delete more than this share of an index's files stops unless
    # deletes are allowed (pipeline/sync.py: an unmounted share looks like an empty folder).
    max_delete_share: float = 0.5


@dataclass
class PrivacySettings:
    """Where an index's passages may be sent (pipeline/pipeline.py, privacy.py).

    ``local_only`` is recorded in an index by every sync; the passages of a local_only index
    go only to this process or a server on a loopback address or in ``trusted_hosts``.
    """

    local_only: bool = True
    # Host names, IP addresses or networks ("gpu-box.lan", "10.1.2.3", "10.0.0.0/8") that
    # a local_only index may send passages to, besides loopback.
    trusted_hosts: tuple[str, ...] = ()


@dataclass
class SummarizeSettings:
    """Batch summaries, ``ragpipe summarize`` (README: Batch summaries)."""

    style: SummaryStyle = "detailed"
    max_tokens: int = 384  # generated tokens per model call (a part's notes, a summary)
    # A map step reads at most this many prompt tokens (the model's n_ctx - max_tokens
    # caps it too): a small model summarizes a short part far better than a long one.
    group_tokens: int = 512
    unsupported: Unsupported = "flag"  # sentences the check cannot back: flagged or dropped
    rollup: Rollup = "set"  # one overview of the whole set, one per top-level folder, or none
    # Added to the batch process's CPU niceness, so questions asked meanwhile come first
    # (measured: README, Batch summaries); 0 keeps the priority.
    nice: int = 10


@dataclass
class ServerSettings:
    """The web server (`ragpipe serve`, `make run`): where it listens and whom it serves."""

    host: str = "127.0.0.1"  # anything but loopback needs accounts and secret_env
    port: int = 8501
    # Environment variable holding the secret that signs the server's cookies (XSRF).
    secret_env: str = ""
    queue_limit: int = 20  # questions in line for one model at once; more are told "busy"
    # Host names the browser may use to reach the server (the Host header; DNS rebinding
    # protection). Empty: the loopback names on loopback; required on any other address.
    allowed_hosts: tuple[str, ...] = ()
    health_port: int = 0  # loopback port of GET /health; 0 = server.port + 1, -1 = none


@dataclass
class AccessSettings:
    """Which groups may read which folders of an index (access.py; README: Document permissions).

    ``folders`` maps a path relative to the index's source folder ("hr/", "/" for all of
    it) to the groups that may read it ("everyone": every signed-in user). The most
    specific entry holding a document decides; a document no entry holds is for admins
    only. Without accounts (the single local user) everything is readable.
    """

    folders: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass
class Settings:
    """All of ragpipe's settings."""

    paths: PathSettings = field(default_factory=PathSettings)
    embedder: EmbedderSettings = field(default_factory=EmbedderSettings)
    chunking: ChunkSettings = field(default_factory=ChunkSettings)
    llm: LLMSettings = field(default_factory=LLMSettings)
    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
    answer: AnswerSettings = field(default_factory=AnswerSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    privacy: PrivacySettings = field(default_factory=PrivacySettings)
    summarize: SummarizeSettings = field(default_factory=SummarizeSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    access: AccessSettings = field(default_factory=AccessSettings)

    def check(self) -> None:
        """Raise ConfigError, naming the setting and what it takes, for a value that means nothing.

        load_settings calls it; the Pipeline calls it again for settings built or changed
        in code, so a bad value is refused before any model loads.
        """
        for key, ok, wanted in _RULES:
            section, _, name = key.partition(".")
            value = getattr(getattr(self, section), name)
            try:
                good = ok(value)
            except TypeError:  # set in code to a value of another type
                good = False
            if not good:
                raise ConfigError(f"setting {key} = {value!r}: must be {wanted}")
        if self.chunking.overlap >= self.chunking.size:
            raise ConfigError("chunking.overlap must be smaller than chunking.size")
        if self.llm.max_tokens >= self.llm.n_ctx:
            raise ConfigError(
                f"llm.max_tokens ({self.llm.max_tokens}) must be smaller than llm.n_ctx "
                f"({self.llm.n_ctx}): the prompt needs the rest of the window"
            )
        for part in dataclasses.fields(self):
            obj = getattr(self, part.name)
            for name, typ in typing.get_type_hints(type(obj)).items():
                _check_choice(getattr(obj, name), typ, f"{part.name}.{name}")
        # set in code, a mapping is checked (and normalized) here as when it is read
        self.access.folders = folder_rules(self.access.folders)

    def check_summaries(self) -> None:
        """Raise ConfigError when the window cannot hold a summary's reduce step.

        Checked when summarizing, not when settings load: answers need no such room.
        """
        if self.summarize.max_tokens * 4 > self.llm.n_ctx:
            raise ConfigError(
                f"summarize.max_tokens ({self.summarize.max_tokens}) must be at most a quarter "
                f"of llm.n_ctx ({self.llm.n_ctx}): a reduce step reads two parts' notes and "
                "writes a third"
            )

    def index_dir(self, name: str) -> Path:
        """Folder of the index called ``name``."""
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise ConfigError(f"invalid index name {name!r}: use letters, digits, '-' or '_'")
        return self.paths.indexes / name


# Numbers outside these ranges mean nothing: (setting, test, what it must be).
_RULES: tuple[tuple[str, typing.Callable[[Any], bool], str], ...] = (
    ("embedder.batch_size", lambda v: v >= 1, "at least 1"),
    ("embedder.max_tokens", lambda v: v >= 0, "0 (the model's window) or more"),
    ("embedder.precision", lambda v: v in ("auto", "fp32", "int8"), "auto, fp32 or int8"),
    ("chunking.size", lambda v: v >= 1, "at least 1"),
    ("chunking.overlap", lambda v: v >= 0, "0 or more"),
    ("llm.n_ctx", lambda v: v >= 1, "at least 1"),
    ("llm.threads", lambda v: v >= 0, "0 (all cores) or more"),
    ("llm.max_tokens", lambda v: v >= 1, "at least 1"),
    ("llm.temperature", lambda v: v >= 0, "0 or more"),
    ("llm.base_url", lambda v: v.startswith(("http://", "https://")) and len(v) > 8,
     "the server's OpenAI API root, e.g. http://127.0.0.1:8080/v1"),
    ("llm.api_key_env", lambda v: v == "" or v.replace("_", "a").isalnum(),
     'the name of an environment variable (e.g. "OPENAI_API_KEY"), not the key itself'),
    ("llm.timeout_s", lambda v: v > 0, "more than 0"),
    ("llm.retries", lambda v: v >= 0, "0 or more"),
    ("llm.slots", lambda v: v >= 1, "at least 1"),
    ("privacy.trusted_hosts", lambda v: all(is_trusted_entry(h) for h in v),
     'host names, IP addresses or networks, e.g. ["gpu-box.lan", "10.0.0.0/8"]'),
    ("retrieval.top_k", lambda v: v >= 1, "at least 1"),
    ("retrieval.keyword_weight", lambda v: 0 <= v <= 1, "between 0 and 1"),
    ("retrieval.keyword_max_df", lambda v: 0 < v <= 1, "more than 0 and at most 1"),
    ("retrieval.rrf_k", lambda v: v >= 0, "0 or more"),
    ("retrieval.candidates", lambda v: v >= 1, "at least 1"),
    ("retrieval.dedup", lambda v: 0 <= v <= 1, "between 0 (off) and 1"),
    ("retrieval.neighbours", lambda v: v >= 0, "0 or more"),
    ("ingest.max_delete_share", lambda v: 0 <= v <= 1, "between 0 and 1, e.g. 0.5"),
    ("retrieval.ann_threshold", lambda v: v >= 1, "at least 1"),
    ("retrieval.nprobe", lambda v: v >= 0, "0 (the tuned value) or more"),
    ("answer.passages", lambda v: v >= 0, "0 (retrieval.top_k) or more"),
    ("answer.min_confidence", lambda v: v == -1 or 0 <= v <= 1,
     "-1 (the calibrated default) or between 0 and 1"),
    ("answer.min_question_coverage", lambda v: 0 <= v <= 1, "between 0 and 1"),
    ("answer.min_unit_score", lambda v: -1 <= v <= 1, "between -1 and 1"),
    ("answer.history_turns", lambda v: v >= 0, "0 or more"),
    ("ingest.max_file_mb", lambda v: v > 0, "more than 0"),
    ("ingest.workers", lambda v: v >= 0, "0 (one per CPU core) or more"),
    ("ingest.timeout_s", lambda v: v > 0, "more than 0"),
    ("ingest.memory_mb", lambda v: v >= 0, "0 (no cap) or more"),
    ("summarize.max_tokens", lambda v: v >= 16, "at least 16"),
    ("summarize.group_tokens", lambda v: v >= 64, "at least 64"),
    ("summarize.nice", lambda v: 0 <= v <= 19, "between 0 (unchanged) and 19 (lowest)"),
    ("answer.max_question_chars", lambda v: v >= 1, "at least 1"),
    ("server.host", lambda v: bool(v.strip()) and " " not in v, "an address or host name"),
    ("server.port", lambda v: 1 <= v <= 65535, "a port number (1-65535)"),
    ("server.secret_env", lambda v: v == "" or v.replace("_", "a").isalnum(),
     'the name of an environment variable (e.g. "RAGPIPE_SECRET"), not the secret itself'),
    ("server.queue_limit", lambda v: v >= 1, "at least 1"),
    ("server.health_port", lambda v: v == -1 or 0 <= v <= 65535,
     "-1 (none), 0 (server.port + 1) or a port number"),
    ("server.allowed_hosts",
     lambda v: all(re.fullmatch(r"\*|(\*\.)?[A-Za-z0-9.\-]+|\[?[0-9a-fA-F:]+\]?", h) for h in v),
     'host names, e.g. ["ragpipe.example.lan", "*.example.lan"]'),
)


# Settings whose value is a table, with the function that checks and normalizes it.
_CONVERT: dict[str, typing.Callable[[Any], Any]] = {"access.folders": folder_rules}


def _check_choice(value: Any, typ: Any, key: str) -> None:
    """Raise ConfigError when a choice setting (a Literal type) holds another value."""
    if typing.get_origin(typ) is Literal and value not in typing.get_args(typ):
        allowed = ", ".join(typing.get_args(typ))
        raise ConfigError(f"setting {key} = {value!r}: use one of {allowed}")


def _coerce(value: Any, typ: Any, key: str) -> Any:
    """Convert a TOML or environment value to the field's declared type."""
    origin = typing.get_origin(typ)
    if origin is Literal:
        value = value.strip().lower() if isinstance(value, str) else value
        _check_choice(value, typ, key)
        return value
    try:
        if typ is Path:
            return Path(value)
        if typ is bool:
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if typ in (int, float, str):
            if typ is int and isinstance(value, float):
                raise ValueError(value)
            return typ(value)
        if origin is tuple:
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            return tuple(str(v) for v in value)
        if origin is dict:
            if isinstance(value, str):  # environment, --set: a TOML inline table
                try:
                    value = tomllib.loads(f"v = {value}")["v"]
                except tomllib.TOMLDecodeError as exc:
                    raise ValueError(f"not a TOML table such as {{ \"hr/\" = [\"hr\"] }}: "
                                     f"{exc}") from None
            return _CONVERT[key](value) if key in _CONVERT else dict(value)
        if origin in (typing.Union, types.UnionType):
            return value
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {key}: cannot use {value!r} ({exc})") from None
    return value


def _apply(settings: Settings, key: str, value: Any) -> None:
    section_name, _, name = key.partition(".")
    section = getattr(settings, section_name, None)
    if section is None or not dataclasses.is_dataclass(section) or not name:
        raise ConfigError(f"unknown setting {key!r}")
    hints = typing.get_type_hints(type(section))
    if name not in hints:
        raise ConfigError(f"unknown setting {key!r}")
    setattr(section, name, _coerce(value, hints[name], key))


def _env_overrides(environ: typing.Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    sections = {f.name for f in dataclasses.fields(Settings)}
    for var, value in environ.items():
        if not var.startswith("RAGPIPE_") or var == "RAGPIPE_CONFIG":
            continue
        rest = var[len("RAGPIPE_") :].lower()
        for section in sections:
            if rest.startswith(section + "_"):
                out[f"{section}.{rest[len(section) + 1 :]}"] = value
                break
    return out


def load_settings(
    config: Path | None = None,
    overrides: dict[str, Any] | None = None,
    environ: typing.Mapping[str, str] | None = None,
) -> Settings:
    """Build the settings: defaults, then the TOML file, then the environment, then ``overrides``.

    The TOML file is ``config``, else ``$RAGPIPE_CONFIG``, else ``./ragpipe.toml`` if present.
    """
    environ = os.environ if environ is None else environ
    settings = Settings()
    base = Path.cwd()
    path = config or (Path(environ["RAGPIPE_CONFIG"]) if environ.get("RAGPIPE_CONFIG") else None)
    if path is None and (base / "ragpipe.toml").is_file():
        path = base / "ragpipe.toml"
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML ({exc})") from None
        base = Path(path).resolve().parent
        for section, values in data.items():
            if not isinstance(values, dict):
                raise ConfigError(f"{path}: [{section}] must be a table")
            for name, value in values.items():
                try:
                    _apply(settings, f"{section}.{name}", value)
                except ConfigError as exc:  # say which file holds the bad line
                    raise ConfigError(f"{path}: {exc}") from None
    for key, value in _env_overrides(environ).items():
        _apply(settings, key, value)
    for key, value in (overrides or {}).items():
        if value is not None:
            _apply(settings, key, value)
    for name in ("indexes", "models"):
        p = getattr(settings.paths, name)
        if not p.is_absolute():
            setattr(settings.paths, name, base / p)
    settings.check()
    return settings
