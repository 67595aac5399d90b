"""Only the package list lives here (everything else is in pyproject.toml): the found code packages plus
``dpm_resources``, the repository's ``resources/`` folder mapped by ``[tool.setuptools.package-dir]``."""
from setuptools import find_packages, setup

setup(packages=find_packages(include=["models", "models.*", "explorer", "explorer.*"]) + ["dpm_resources"])
