import logging

import numpy as np
import pytest

from masklab import sysinfo
from masklab.sysinfo import _cpuinfo_has_bf16, cpu_has_bf16

EPYC_NO_BF16 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B12
flags\t\t: fpu vme sse sse2 avx avx2 fma bmi2 sha_ni
"""
SAPPHIRE_RAPIDS = "flags\t\t: avx2 avx512f avx512bw avx512_vnni amx_bf16 amx_tile amx_int8\n"
ZEN4 = "flags\t\t: avx2 avx512f avx512bw avx512_bf16 avx512_vnni\n"
NEOVERSE_V1 = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"
GRAVITON2 = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 crc32 atomics\n"


def test_cpuinfo_bf16_detection():
    assert not _cpuinfo_has_bf16(EPYC_NO_BF16)
    assert not _cpuinfo_has_bf16(GRAVITON2)
    assert _cpuinfo_has_bf16(SAPPHIRE_RAPIDS) and _cpuinfo_has_bf16(ZEN4)
    assert _cpuinfo_has_bf16(NEOVERSE_V1)
    assert not _cpuinfo_has_bf16("")


def test_precision_auto_is_bf16_only_where_the_cpu_has_native_units(monkeypatch):
    from masklab.sysinfo import precision_for

    for native, want in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(sysinfo, "cpu_has_bf16", lambda native=native: native)
        assert precision_for("auto", "cpu") == want
        assert precision_for("fp32", "cpu") == "fp32"
    assert precision_for("auto", "meta") == "fp32"  # not a CPU: no autocast to bf16
    with pytest.raises(ValueError, match="'fp32', 'bf16' or 'auto'"):
        precision_for("fp16", "cpu")


def test_bf16_on_a_cpu_without_native_units_runs_fp32(tmp_path, monkeypatch, caplog):
    pytest.importorskip("transformers")
    import masklab.interactive.sam as sam_mod
    from masklab.interactive import Session
    from tests.interactive.test_sam import _tiny_family

    _tiny_family("sam2", tmp_path / "sam2")
    monkeypatch.setenv("MASKLAB_CPU_BF16", "0")
    cpu_has_bf16.cache_clear()
    sysinfo._warn_emulated_bf16.cache_clear()
    try:
        img = np.random.default_rng(3).integers(0, 255, (90, 120, 3), dtype=np.uint8)
        with caplog.at_level(logging.WARNING, logger="masklab"):
            a = sam_mod.SamBackend(tmp_path / "sam2", precision="bf16")
            b = sam_mod.SamBackend(tmp_path / "sam2", precision="bf16")
        assert a.precision == b.precision == "fp32"
        warned = [r for r in caplog.records if "no native bfloat16" in r.getMessage()]
        assert len(warned) == 1  # once per process
        fp32 = Session(img, sam_mod.SamBackend(tmp_path / "sam2")).predict(points=[[30, 40]])
        got = Session(img, a).predict(points=[[30, 40]])
        np.testing.assert_array_equal(got.to_dense(), fp32.to_dense())
        np.testing.assert_array_equal(got.scores, fp32.scores)
        monkeypatch.setenv("MASKLAB_CPU_BF16", "1")
        cpu_has_bf16.cache_clear()
        assert sam_mod.SamBackend(tmp_path / "sam2", precision="bf16").precision == "bf16"
    finally:
        cpu_has_bf16.cache_clear()
