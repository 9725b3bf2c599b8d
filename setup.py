"""What pyproject.toml cannot say on its own: the repository's `templates/` folder (the
source of the templates, edited in place) ships inside the package as `mailhub/templates`,
next to every package under `mailhub/` (found, so a new one cannot be left out).

The language folders (templates/en, templates/cy, ...) are listed as data-only namespace
packages, which is how setuptools wants folders of data inside a package declared."""

from setuptools import find_namespace_packages, find_packages, setup

TEMPLATES = [
    "mailhub.templates",
    *(f"mailhub.templates.{lang}" for lang in find_namespace_packages(where="templates")),
]

setup(
    packages=[*find_packages(include=["mailhub", "mailhub.*"]), *TEMPLATES],
    package_dir={"mailhub.templates": "templates"},
    package_data={package: ["*.txt", "*.html"] for package in TEMPLATES},
)
