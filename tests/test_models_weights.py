"""Finding pretrained weights: paths, the torch hub cache, and downloads from a local HTTP
server (never the internet): progress, hash check, clear errors offline."""
import hashlib
import http.server
import threading

import numpy as np
import pytest

from weitiao.io import save_state_dict
from weitiao.models import resnet18
from weitiao.models.weights import download, hub_dir, resolve


@pytest.fixture
def served(tmp_path):
    """A local HTTP server over tmp_path/www; yields (folder, base URL)."""
    www = tmp_path / "www"
    www.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(www), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _checkpoint(path, seed=0):
    """A ResNet-18 checkpoint at path; any name (the loader reads the format from the
    content, as it does for torchvision's .pth files)."""
    model = resnet18(rng=seed)
    staged = path.with_name(path.name + ".safetensors")
    save_state_dict(model.state_dict(), staged)
    staged.rename(path)
    return model


def _hashed_name(path, stem="resnet18"):
    """Rename a file to torchvision's convention: stem-<first 8 hex of sha256>.ext."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    target = path.with_name(f"{stem}-{digest}.pth")
    path.rename(target)
    return target


def test_hub_dir_honours_torch_home(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert hub_dir() == tmp_path / "hub" / "checkpoints"
    monkeypatch.delenv("TORCH_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub_dir() == tmp_path / "xdg" / "torch" / "hub" / "checkpoints"


def test_weights_from_a_path(tmp_path):
    model = _checkpoint(tmp_path / "w.safetensors", seed=3)
    loaded = resnet18(weights=tmp_path / "w.safetensors", num_classes=7)
    np.testing.assert_array_equal(loaded.conv1.weight.data, model.conv1.weight.data)
    assert loaded.fc.out_features == 7


def test_known_name_found_in_hub_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cache = hub_dir()
    cache.mkdir(parents=True)
    model = _checkpoint(cache / "resnet18-f37072fd.pth", seed=4)
    loaded = resnet18(weights="IMAGENET1K_V1")
    np.testing.assert_array_equal(loaded.layer4[1].bn2.running_var,
                                  model.layer4[1].bn2.running_var)


def test_download_with_hash_check_into_the_cache(served, monkeypatch, tmp_path):
    www, base = served
    file = _hashed_name(_write(www / "tmp.pth"))
    known = {"V1": f"https://example.invalid/models/{file.name}"}
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WEITIAO_WEIGHTS_MIRROR", base)
    path = resolve("V1", known, "resnet18", progress=False)
    assert path == hub_dir() / file.name
    assert path.read_bytes() == file.read_bytes()
    assert resolve("DEFAULT", known, "resnet18", progress=False) == path  # cached now


def _write(path):
    _checkpoint(path, seed=5)
    return path


def test_download_refuses_a_corrupt_file_and_keeps_nothing(served, tmp_path):
    www, base = served
    (www / "resnet18-00000000.pth").write_bytes(b"not the weights")
    dest = tmp_path / "cache" / "resnet18-00000000.pth"
    with pytest.raises(ValueError, match="SHA-256 .* expected 00000000"):
        download(f"{base}/resnet18-00000000.pth", dest, "00000000", progress=False)
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []


def test_offline_error_says_where_to_put_the_file(tmp_path):
    dest = tmp_path / "resnet18-f37072fd.pth"
    with pytest.raises(ConnectionError, match=r"cannot download .*put the file at .*"
                                              r"resnet18-f37072fd\.pth"):
        download("http://127.0.0.1:9/resnet18-f37072fd.pth", dest, "f37072fd",
                 progress=False)
    assert not dest.exists()


def test_unknown_weights_name():
    with pytest.raises(ValueError, match="neither an existing file nor a known name; known: "
                                         "DEFAULT, IMAGENET1K_V1"):
        resnet18(weights="IMAGENET9K")


def test_wrong_architecture_checkpoint_names_the_file(tmp_path):
    from weitiao.models import resnet34

    _checkpoint(tmp_path / "r18.safetensors")
    with pytest.raises(ValueError, match=r"resnet34: .*r18\.safetensors does not fit this "
                                         r"architecture: .*missing keys: layer1\.2"):
        resnet34(weights=tmp_path / "r18.safetensors")


def test_weitiao_checkpoint_loads_into_torch_resnet(tmp_path):
    """A state dict saved by weitiao loads strictly into the torchvision-named torch model
    and gives the same logits."""
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file

    from tests.torch_resnet import resnet18 as torch_resnet18

    model = resnet18(num_classes=10, rng=0).eval()
    save_state_dict(model.state_dict(), tmp_path / "w.safetensors")
    reference = torch_resnet18(num_classes=10).eval()
    reference.load_state_dict(load_file(tmp_path / "w.safetensors"), strict=True)
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model(x), expected, rtol=1e-4, atol=1e-4)
