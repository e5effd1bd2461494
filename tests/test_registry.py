"""The model registry: versions written whole, refused when corrupted or mis-shaped."""

import numpy as np
import pytest
import torch

from actors.policies import registry
from actors.policies.forward import StrategicPolicy, strategic_shapes, tactical_shapes
from actors.policies.networks import (
    StrategicEnsemble,
    TacticalAgents,
    export_strategic,
    export_tactical,
    import_strategic,
    import_tactical,
)
from actors.policies.registry import ModelError


@pytest.fixture(scope="module")
def strategic_arrays() -> dict[str, np.ndarray]:
    torch.manual_seed(11)
    return export_strategic(StrategicEnsemble().eval())


def _save(root, arrays, version="v1"):
    metadata = {"created": "2026-12-04T08:00:00Z", "command": "test", "metrics": {}}
    return registry.save_version(root, "strategic", version, arrays, {"agents": 3}, metadata)


def test_the_exports_are_exactly_what_serving_expects(strategic_arrays):
    """One table of names and shapes ties torch's export to the serving pass."""
    assert {k: v.shape for k, v in strategic_arrays.items()} == strategic_shapes()
    torch.manual_seed(12)
    tactical = export_tactical(TacticalAgents().eval())
    assert {k: v.shape for k, v in tactical.items()} == tactical_shapes()


def test_a_version_imports_back_into_the_torch_networks_it_came_from(strategic_arrays):
    """Registry arrays -> torch (to benchmark or train on from a version) -> the same arrays."""
    imported = import_strategic(strategic_arrays)
    assert not imported.training
    exported = export_strategic(imported)
    assert exported.keys() == strategic_arrays.keys()
    for key, array in strategic_arrays.items():
        np.testing.assert_allclose(exported[key], array, rtol=1e-6, err_msg=key)
    torch.manual_seed(13)
    tactical = export_tactical(TacticalAgents().eval())
    again = export_tactical(import_tactical(tactical))
    assert all(np.array_equal(again[key], array) for key, array in tactical.items())


def test_a_version_round_trips_and_serves_the_same(tmp_path, strategic_arrays):
    _save(tmp_path, strategic_arrays)
    assert registry.names(tmp_path) == ["strategic"]
    assert registry.versions(tmp_path, "strategic") == ["v1"]
    assert registry.active_version(tmp_path, "strategic") is None
    with pytest.raises(ModelError, match="no version is active"):
        registry.load_version(tmp_path, "strategic", None, strategic_shapes())
    digest = registry.activate(tmp_path, "strategic", "v1")
    loaded = registry.load_version(tmp_path, "strategic", None, strategic_shapes())
    assert (loaded.version, loaded.digest, loaded.config) == ("v1", digest, {"agents": 3})
    inputs = {"mlmi": np.ones(10, np.float32), "nwrqk": np.ones(10, np.float32)}
    inputs["regime"] = np.ones(9, np.float32)
    np.testing.assert_array_equal(
        StrategicPolicy(loaded.arrays).probabilities(inputs)[0],
        StrategicPolicy(strategic_arrays).probabilities(inputs)[0],
    )
    with pytest.raises(ModelError, match="never rewritten"):
        _save(tmp_path, strategic_arrays)


@pytest.mark.parametrize("file", ["weights.npz", "config.json", "metadata.json"])
def test_one_flipped_byte_or_a_missing_file_is_refused(tmp_path, strategic_arrays, file):
    directory = _save(tmp_path, strategic_arrays)
    path = directory / file
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match=f"{file} does not match its sha256"):
        registry.load_version(tmp_path, "strategic", "v1", strategic_shapes())
    with pytest.raises(ModelError, match=f"{file} does not match"):
        registry.activate(tmp_path, "strategic", "v1")  # never activated
    assert registry.active_version(tmp_path, "strategic") is None
    path.unlink()
    with pytest.raises(ModelError, match=f"{file} is missing"):
        registry.verify(tmp_path, "strategic", "v1")


def test_weights_that_do_not_fit_the_model_are_refused_naming_each_array(
    tmp_path, strategic_arrays
):
    arrays = dict(strategic_arrays)
    arrays["mlmi.0.w"] = np.zeros((256, 9), np.float32)
    del arrays["regime.temperature"]
    arrays["stray"] = np.zeros(1, np.float32)
    _save(tmp_path, arrays)
    with pytest.raises(ModelError) as error:
        registry.load_version(tmp_path, "strategic", "v1", strategic_shapes())
    text = str(error.value)
    assert "mlmi.0.w: shape (256, 9), expected (256, 10)" in text
    assert "regime.temperature: missing" in text and "stray: not part of this model" in text


def test_the_models_command_lists_verifies_and_activates(tmp_path, strategic_arrays, capsys):
    from actors.policies.cli import main

    _save(tmp_path, strategic_arrays, "2026-12-04.1")
    _save(tmp_path, strategic_arrays, "2026-12-04.2")
    root = ["--root", str(tmp_path)]
    assert main([*root, "activate", "strategic", "2026-12-04.2"]) == 0
    assert "strategic 2026-12-04.2: active" in capsys.readouterr().out
    assert main([*root, "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[2].split()[:3] == ["strategic", "2026-12-04.2", "*"]
    assert main([*root, "verify", "strategic"]) == 0  # the active one
    weights = tmp_path / "strategic" / "2026-12-04.1" / "weights.npz"
    weights.write_bytes(weights.read_bytes()[:-1])
    assert main([*root, "verify", "strategic", "2026-12-04.1"]) == 1
    assert "weights.npz does not match its sha256" in capsys.readouterr().err
    assert main([*root, "activate", "strategic", "2026-12-04.1"]) == 1
    assert registry.active_version(tmp_path, "strategic") == "2026-12-04.2"
    assert main([*root, "list", "--json"]) == 1  # one version is refused


def test_fitting_writes_loadable_reproducible_versions_with_their_recipe(tmp_path):
    """A small fit, twice: the same arguments give the same weights; the metadata says
    how to make them again."""
    from actors.policies.cli import main
    from actors.policies.forward import TacticalPolicy

    args = ["--sessions", "6", "--holdout", "2", "--epochs", "1", "--seed", "3"]
    for version, root in (("a", tmp_path / "one"), ("a", tmp_path / "two")):
        assert main(["fit", "--root", str(root), "--version", version, *args, "--activate"]) == 0
    for name, shapes in (("strategic", strategic_shapes()), ("tactical", tactical_shapes())):
        one = registry.load_version(tmp_path / "one", name, None, shapes)
        two = registry.load_version(tmp_path / "two", name, None, shapes)
        assert one.arrays.keys() == two.arrays.keys()
        for key in one.arrays:
            np.testing.assert_array_equal(one.arrays[key], two.arrays[key], err_msg=key)
        meta = one.metadata
        assert (
            meta["command"].startswith("grandmodel models fit ") and "--seed 3" in meta["command"]
        )
        assert meta["training_data"]["seed"] == 3 and len(meta["git_commit"]) in (40, 7)
        assert meta["metrics"]["train_samples"] > 0
    probabilities = TacticalPolicy(one.arrays).probabilities(np.zeros((60, 7), np.float32))
    assert probabilities.shape == (3, 3)
