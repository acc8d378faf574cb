"""Claims in the README and docs/ that the code decides: they must say what the code does, and name
no file outside the repository."""

import re
from pathlib import Path

import pytest

from cenn.healpix.resolution import MAX_MAP_PIXEL, SMOOTH_MAP_PIXEL
from cenn.io.units import KELVIN_STD_UK, MAX_SKY_STD_UK, MIN_SKY_STD_UK, SPREAD_MARGIN, uk_per_unit
from cenn.predict.units import _ORDER_DOUBT_RATIO, _ORDER_REFUSE_RATIO

ROOT = Path(__file__).parents[1]


def _text(path: str) -> str:
    """The file's text with every run of white space made one space (claims wrap across lines)."""
    return " ".join((ROOT / path).read_text(encoding="utf-8").split())


def test_no_file_outside_the_repository_is_cited():
    outside = re.compile(r"\.\./shared|\bshared/|\bdesign\.md")
    files = [ROOT / "README.md", ROOT / "pyproject.toml", *(ROOT / "docs").rglob("*.md"),
             *(p for p in (ROOT / "src" / "cenn").rglob("*") if p.suffix in {".py", ".toml", ".csv", ".md"})]
    cited = [f"{p.relative_to(ROOT)}:{n}" for p in files
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if outside.search(line)]
    assert cited == []


def test_test_paths_named_in_pyproject_exist():
    named = re.findall(r"tests/[\w/]+\.py", _text("pyproject.toml"))
    assert named and all((ROOT / path).is_file() for path in named), named


def test_readme_runs_the_ablation_with_its_documented_budget():
    default = int(re.search(r'"--samples", type=int, default=([\d_]+)',
                            (ROOT / "benchmarks" / "ablation.py").read_text()).group(1))
    readme = _text("README.md")
    given = re.findall(r"benchmarks/ablation\.py --samples (\d+)", readme)
    assert all(int(n) == default for n in given) and "benchmarks/ablation.py" in readme
    assert f"{default:,} samples per variant" in _text("docs/learning.md")


def test_healpix_doc_states_the_refusal_thresholds_of_the_code():
    doc = _text("docs/healpix.md")
    for claim in (f"a map pixel (√Ω) more than {MAX_MAP_PIXEL:g} patch pixels wide is refused",
                  f"with a warning above {SMOOTH_MAP_PIXEL:g} patch pixels",
                  f"a lower band varying {_ORDER_REFUSE_RATIO:g} times more than a higher one is refused, "
                  f"{_ORDER_DOUBT_RATIO:g} times more warned about",
                  f"is below {MIN_SKY_STD_UK:g} µK", f"above {SPREAD_MARGIN:g} × the typical sky"):
        assert claim in doc, claim
    assert (KELVIN_STD_UK, MAX_SKY_STD_UK) == (1e-2, 1e7)
    assert "below 10⁻² µK or above 10⁷ µK" in doc


def test_robustness_doc_quotes_the_unit_message_of_the_code():
    with pytest.raises(ValueError) as refused:
        uk_per_unit("K_RJ")
    quoted = re.search(r"`(unknown map units 'K_RJ'[^`]*?) …`", _text("docs/robustness.md")).group(1)
    assert str(refused.value).startswith(quoted)
