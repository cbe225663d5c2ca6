"""Install fink-ingest: ``pip install -e '.[test]'`` (Java 17 is the only system requirement)."""
from setuptools import find_packages, setup

CORE = [
    "pyspark>=4.0",
    "pyarrow>=15",
    "fastavro>=1.9",
    "astropy>=6",
    "healpy>=1.16",
    "pandas>=2,<3",  # pyspark 4 does not yet support pandas 3
    "numpy>=1.26",
    "happybase>=1.2",
    "tqdm>=4.60",
    "zstandard>=0.22",  # per-table dictionaries of the embedded store (store/rows.py)
]

setup(
    name="fink-ingest",
    version="0.1.0",
    description="Storage and indexing layer of the Fink alert broker: datalake -> HBase-shaped tables",
    python_requires=">=3.10",
    packages=find_packages(include=["fink_ingest", "fink_ingest.*", "datasim", "datasim.*"]),
    install_requires=CORE,
    extras_require={
        # matplotlib (and its pillow): PNG cutouts; scipy: the sigmoid stretch; fink-utils: SIMBAD's labels
        "api": ["flask>=3", "waitress>=3", "matplotlib>=3.7", "scipy>=1.10", "fink-utils>=0.79"],
        "test": ["pytest>=7", "chispa>=0.9", "hypothesis>=6", "flask>=3", "waitress>=3", "matplotlib>=3.7",
                 "scipy>=1.10", "fink-utils>=0.79"],
        "bench": ["duckdb>=0.10"],
    },
    scripts=["bin/fink_push", "bin/fink_datasim", "bin/fink_api"],
)
