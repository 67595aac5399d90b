"""Only the package list lives here (everything else is in pyproject.toml): a found list cannot be
combined with a mapped package in pyproject.toml's tables.

- the code: ``models`` and ``explorer`` with their subpackages;
- the bundled resources: the repository's ``resources/`` folder installed as the data-only package
  ``dpm_resources`` (``[tool.setuptools.package-dir]``), with its data folders ``data/`` and ``models/``
  listed as packages too, so that setuptools ships their files (``[tool.setuptools.package-data]``).
"""
from setuptools import find_namespace_packages, find_packages, setup

code = find_packages(include=["models", "models.*", "explorer", "explorer.*"])
data = ["dpm_resources"] + [f"dpm_resources.{p}" for p in find_namespace_packages("resources", include=["data*", "models*"])]

setup(packages=code + data)
