"""Packaging that pyproject.toml cannot express on its own.

The mapping files live at the top of the repository (``mappings/``), where people read
and edit them, and ship inside the wheel as ``receiver/_mappings/``: a ``package_dir``
entry maps the one onto the other, beside the packages found automatically (a static
``packages`` list in pyproject.toml would have to name every subpackage by hand).
Everything else is declared in pyproject.toml.
"""

from setuptools import find_namespace_packages, setup

setup(
    packages=[
        *find_namespace_packages(include=["receiver", "receiver.*"], exclude=["*.__pycache__"]),
        "receiver._mappings",
    ],
    package_dir={"receiver._mappings": "mappings"},
)
