"""The pure parts of `farm demo`: its generated config, the failure switch."""

from __future__ import annotations

import os
import time

from farm import demo, loader

NAMES = {"s1", "s2", "s3"}


def test_generated_config_is_valid_and_has_stats_and_admin_socket(tmp_path):
    path = tmp_path / "farm.toml"
    path.write_text(demo.demo_config(18080, 2, [("s1", 18081, 1), ("s2", 18082, 2)], 18404,
                                     str(tmp_path / 'a "quoted" dir' / "admin.sock")))
    cfg = loader.load(str(path))
    assert cfg.global_.admin_socket == str(tmp_path / 'a "quoted" dir' / "admin.sock")
    assert str(cfg.stats.bind) == "127.0.0.1:18404"
    assert cfg.stats.admin is True
    assert [str(a) for a in cfg.all_binds()] == ["127.0.0.1:18080", "127.0.0.1:18404"]
    backend = next(b for b in cfg.backends if b.name == "demo")
    assert [(s.name, s.weight) for s in backend.servers] == [("s1", 1), ("s2", 2)]


def test_switch_paths():
    assert demo.switch_request("/demo/fail/s2", NAMES) == ("fail", "s2", demo.FAIL_SECONDS)
    assert demo.switch_request("/demo/fail/s2?seconds=5", NAMES) == ("fail", "s2", 5.0)
    assert demo.switch_request("/demo/fail/s2?seconds=-3", NAMES) == ("fail", "s2", 0.0)
    assert demo.switch_request("/demo/fail/s2?seconds=1e9", NAMES) == ("fail", "s2", 3600.0)
    assert demo.switch_request("/demo/fail/s2?seconds=soon", NAMES) == ("fail", "s2", demo.FAIL_SECONDS)
    assert demo.switch_request("/demo/recover/s1", NAMES) == ("recover", "s1", demo.FAIL_SECONDS)
    for other in ("/", "/demo/fail", "/demo/fail/s9", "/demo/break/s1", "/x/demo/fail/s1",
                  "/demo/fail/s1/more"):
        assert demo.switch_request(other, NAMES) is None, other


def test_failures_expire_and_recover():
    f = demo.Failures()
    assert not f.failing("s2")
    f.fail("s2", 30)
    assert f.failing("s2") and not f.failing("s1")
    f.recover("s2")
    assert not f.failing("s2")
    f.fail("s1", 0.01)
    time.sleep(0.02)
    assert not f.failing("s1")


def test_well_known_socket_follows_the_runtime_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert demo.well_known_socket() == str(tmp_path / "farm-demo.sock")
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    demo.tempfile.tempdir = None             # tempfile caches the directory it found
    try:
        assert demo.well_known_socket() == str(tmp_path / f"farm-demo.{os.getuid()}.sock")
    finally:
        demo.tempfile.tempdir = None
