"""The test folders have no ``__init__.py``, so pytest imports each test module by its file name: two
modules of one name in different folders stop the collection of the whole suite."""

from collections import Counter
from pathlib import Path


def test_every_test_module_has_its_own_name():
    names = Counter(path.name for path in Path(__file__).parent.rglob("test_*.py"))
    assert names["test_test_layout.py"] == 1
    assert [name for name, count in names.items() if count > 1] == []
