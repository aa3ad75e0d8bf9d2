"""`uniformerv2 flops`: the released reference configurations' parameters and GMAC."""

from __future__ import annotations

import pytest

from uniformerv2.cli.main import main

# Parameters (exact) and GMAC (paper / official measurement, within 1%) of one view.
REFERENCE = {
    "uniformerv2_b16": ("8x224", 114_552_208, 148.3),
    "uniformerv2_b16_ssv2": ("16x224", 162_992_814, 187.5),
    "uniformerv2_l14": ("8x224", 354_099_600, 666.2),
    "uniformerv2_l14_336": ("8x336", 354_427_280, 1568.2),
}


def test_reference_table(capsys) -> None:
    assert main(["flops"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["model", "input", "params", "GMAC", "official"]
    rows = {cells[0]: cells[1:] for cells in (line.split() for line in lines[1:])}
    assert set(rows) == set(REFERENCE)
    for name, (shape, params, gmac) in REFERENCE.items():
        got_shape, got_params, got_gmac, official, _ = rows[name]
        assert float(official) == gmac
        assert got_shape == shape
        assert int(got_params.replace(",", "")) == params
        assert float(got_gmac) == pytest.approx(gmac, rel=0.01)


def test_named_model_and_unknown_name(capsys) -> None:
    assert main(["flops", "uniformerv2_b16", "--frames", "16"]) == 0
    assert "16x224" in capsys.readouterr().out
    assert main(["flops", "uniformerv2_b61"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown model") and "did you mean uniformerv2_b16" in err
