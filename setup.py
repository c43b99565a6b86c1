"""sparkdl: Spark DataFrames in, Horovod-trained PyTorch models back in the lake.

The distribution is ``sparkdl-torch`` (``sparkdl`` on PyPI is an unrelated 2018
project); the import package is ``sparkdl``."""
import re
from pathlib import Path

from setuptools import find_packages, setup


def _version():
    text = (Path(__file__).parent / "sparkdl" / "__init__.py").read_text()
    return re.search(r'^__version__ = "([^"]+)"', text, re.M).group(1)


def _requirements(name):
    lines = (Path(__file__).parent / name).read_text().splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


setup(
    name="sparkdl-torch",
    version=_version(),
    description="End-to-end deep learning on Spark: ETL, Horovod training in one barrier stage, "
    "write-back to the lake and batch scoring.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11,<3.14",
    packages=find_packages(include=["sparkdl", "sparkdl.*"]),
    include_package_data=True,
    package_data={"sparkdl": ["datasets/*/*.csv.gz", "datasets/*/*.npz", "datasets/*/*.md"]},
    install_requires=_requirements("requirements.txt"),
    # MLflow (tracking and the run's pyfunc model) brings ~60 packages and caps pyarrow < 26: optional.
    # Optuna (sparkdl tune) is light but only the search needs it.
    extras_require={"test": _requirements("requirements-test.txt"), "mlflow": ["mlflow>=3.17,<4"],
                    "tune": ["optuna>=5.1,<6"], "ray": ["ray[train]>=2.60,<3"]},
    entry_points={"console_scripts": ["sparkdl=sparkdl.cli:main",
                                      "sparkdl-rank=sparkdl.training.launch.process_rank:main"]},
    classifiers=["Programming Language :: Python :: 3", "Topic :: Scientific/Engineering :: Artificial Intelligence"],
)
