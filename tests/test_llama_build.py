"""The llama.cpp build flags chosen from /proc/cpuinfo, and the wheel cache kept per flag set."""

import importlib.util
from pathlib import Path

spec = importlib.util.spec_from_file_location(
    "llama_build", Path(__file__).resolve().parent.parent / "scripts" / "llama_build.py")
llama_build = importlib.util.module_from_spec(spec)
spec.loader.exec_module(llama_build)

SAPPHIRE = ("flags\t\t: fpu sse4_2 avx f16c fma avx2 avx512f avx512dq avx512cd avx512bw "
            "avx512vl avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8\n")
HASWELL = "processor\t: 0\nflags\t\t: fpu sse4_2 avx f16c fma avx2\n"
OLD = "flags\t\t: fpu sse4_2 avx\n"


def test_avx512_with_vnni_and_bf16_where_the_cpu_has_them_and_never_amx():
    args = llama_build.cmake_args(llama_build.cpu_flags(SAPPHIRE))
    assert "-DGGML_NATIVE=OFF" in args
    assert {"-DGGML_AVX512=ON", "-DGGML_AVX512_VNNI=ON", "-DGGML_AVX512_BF16=ON"} <= set(args)
    assert not [a for a in args if a.startswith("-DGGML_AMX") and a.endswith("=ON")]
    assert {"-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DGGML_AMX_BF16=OFF"} <= set(args)


def test_no_avx512_without_every_subset_and_no_avx2_without_it():
    haswell = llama_build.cmake_args(llama_build.cpu_flags(HASWELL))
    assert "-DGGML_AVX2=ON" in haswell and not any("AVX512" in a for a in haswell)
    partial = llama_build.cmake_args(llama_build.cpu_flags(HASWELL.replace("avx2", "avx2 avx512f")))
    assert not any("AVX512" in a for a in partial)
    old = llama_build.cmake_args(llama_build.cpu_flags(OLD))
    assert "-DGGML_AVX2=OFF" in old and "-DGGML_FMA=OFF" in old and "-DGGML_AVX=ON" in old


def test_generic_fallback_and_other_architectures_get_the_plain_build():
    flags = llama_build.cpu_flags(SAPPHIRE)
    assert llama_build.cmake_args(flags, generic=True) == ["-DGGML_NATIVE=OFF"]
    assert llama_build.cmake_args(flags, machine="aarch64") == ["-DGGML_NATIVE=OFF"]


def test_each_flag_set_has_its_own_wheel_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    fast = llama_build.cmake_args(llama_build.cpu_flags(SAPPHIRE))
    generic = llama_build.cmake_args(set(), generic=True)
    a, b = llama_build.wheel_dir("0.3.36", fast), llama_build.wheel_dir("0.3.36", generic)
    assert a != b and a.parent == b.parent == tmp_path / "ragpipe" / "llama-wheels"
    assert llama_build.wheel_dir("0.3.37", fast) != a
    assert llama_build.wheel_dir("0.3.36", list(fast)) == a
