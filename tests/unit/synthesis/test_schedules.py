"""The paper's octave schedules, as published, and their scaling to other input sizes."""

from __future__ import annotations

import pytest

from facetviz.synthesis.schedules import CBR, MFV, canvas_size, interpolate, scaled


def test_paper_schedules_as_published() -> None:
    assert sum(o.steps for o in MFV) == 370 and sum(o.steps for o in CBR) == 530
    assert [o.objective for o in CBR[:3]] == ["probability", "probability", "activation"]
    assert MFV[2].margin == 50 and MFV[-1].to_input_size and CBR[-1].to_input_size


def test_schedules_scale_to_the_input_size() -> None:
    small = scaled(MFV, 28, steps_scale=0.1)
    assert [o.steps for o in small] == [19, 15, 2, 1]
    assert small[2].margin == 6  # 50 px of 227 -> 6 px of 28: the central 16 x 16 moves
    assert scaled(MFV, 227)[2].margin == 50
    assert canvas_size(227) == 256 and canvas_size(28) == 32


def test_interpolate_runs_from_start_to_end() -> None:
    assert interpolate((0.4, 0.8), 0, 5) == 0.4
    assert interpolate((0.4, 0.8), 4, 5) == pytest.approx(0.8)
    assert interpolate((2.0, 1.0), 0, 1) == 2.0
