"""The model registry: versioned policy weights on disk, checked before anything serves them.

Layout under a root (the shipped one is `models/registry` in the repository):

    <root>/<name>/<version>/weights.npz      the exported float32 arrays (forward.py names)
    <root>/<name>/<version>/config.json      the architecture's parameters
    <root>/<name>/<version>/metadata.json    created, git commit, training data and
                                             command, metrics
    <root>/<name>/<version>/manifest.json    sha256 of each of the three files above
    <root>/<name>/ACTIVE                     the version served, one line

A version is written to a temporary directory and renamed into place, so a reader never
sees half of one. Loading checks the manifest (a missing file or one flipped byte is
refused), reads the arrays without pickle, and checks every array's shape against what
the serving pass expects (`expected`); each failure is a `ModelError` that says what is
wrong with which file, and the actor that asked holds (no trades) and reports it.
"""

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FILES = ("weights.npz", "config.json", "metadata.json")
MANIFEST = "manifest.json"
ACTIVE = "ACTIVE"
SHIPPED_ROOT = Path(__file__).resolve().parents[2] / "models" / "registry"


class ModelError(Exception):
    """A model version that cannot be served, and why."""


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: str
    arrays: dict[str, np.ndarray]
    config: dict[str, Any]
    metadata: dict[str, Any]
    digest: str
    """sha256 of the manifest: names this exact version in decisions and the journal."""


def save_version(
    root: Path,
    name: str,
    version: str,
    arrays: Mapping[str, np.ndarray],
    config: Mapping[str, Any],
    metadata: Mapping[str, Any],
) -> Path:
    """Write a new version (refused if it exists); its directory."""
    target = root / name / version
    if target.exists():
        raise ModelError(f"{name} {version} exists already: a version is never rewritten")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=target.parent))
    try:
        np.savez(
            staging / "weights.npz", **{k: np.asarray(v, np.float32) for k, v in arrays.items()}
        )
        (staging / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        (staging / "metadata.json").write_text(
            json.dumps(metadata, indent=2, sort_keys=True) + "\n"
        )
        manifest = {file: _sha256(staging / file) for file in FILES}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def verify(root: Path, name: str, version: str) -> str:
    """Check a version's files against its manifest; the manifest's sha256."""
    directory = root / name / version
    manifest_path = directory / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise ModelError(f"{name} {version}: no {MANIFEST} in {directory}") from None
    except json.JSONDecodeError as error:
        raise ModelError(f"{name} {version}: {MANIFEST} is not JSON: {error}") from None
    for file in FILES:
        path = directory / file
        if not path.exists():
            raise ModelError(f"{name} {version}: {file} is missing")
        if _sha256(path) != manifest.get(file):
            raise ModelError(f"{name} {version}: {file} does not match its sha256 in the manifest")
    return _sha256(manifest_path)


def load_version(
    root: Path, name: str, version: str | None, expected: Mapping[str, tuple[int, ...]]
) -> LoadedModel:
    """Verify and load a version (None: the active one), its arrays checked against the
    `expected` names and shapes."""
    version = version or active_version(root, name)
    if version is None:
        raise ModelError(f"{name}: no version is active in {root / name}")
    digest = verify(root, name, version)
    directory = root / name / version
    try:
        with np.load(directory / "weights.npz", allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError) as error:
        raise ModelError(f"{name} {version}: weights.npz cannot be read: {error}") from None
    problems = [
        f"{key}: missing"
        if key not in arrays
        else f"{key}: shape {arrays[key].shape}, expected {shape}"
        for key, shape in expected.items()
        if key not in arrays or arrays[key].shape != shape
    ]
    extra = sorted(set(arrays) - set(expected))
    if problems or extra:
        listed = "; ".join(problems + [f"{key}: not part of this model" for key in extra])
        raise ModelError(f"{name} {version}: weights do not fit the model: {listed}")
    return LoadedModel(
        name,
        version,
        arrays,
        json.loads((directory / "config.json").read_text()),
        json.loads((directory / "metadata.json").read_text()),
        digest,
    )


def versions(root: Path, name: str) -> list[str]:
    """The versions of a model, oldest name first (staging directories excluded)."""
    directory = root / name
    if not directory.is_dir():
        return []
    return sorted(p.name for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))


def names(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def active_version(root: Path, name: str) -> str | None:
    try:
        return (root / name / ACTIVE).read_text().strip() or None
    except FileNotFoundError:
        return None


def activate(root: Path, name: str, version: str) -> str:
    """Make `version` the one served (after verifying it); its manifest's sha256."""
    digest = verify(root, name, version)
    pointer = root / name / ACTIVE
    staging = pointer.with_name(f".{ACTIVE}.{os.getpid()}")
    staging.write_text(version + "\n")
    os.replace(staging, pointer)
    return digest


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
