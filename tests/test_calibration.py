"""Calibration: /proc/self/mountstats parsed in the kernel's format, deltas into a latency profile,
the loader's calibrate action in process (no NFS mount here: a clear refusal), the saved profile."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from efs_sqlite import aws
from efs_sqlite.aws.fakes import LambdaContext, import_handler
from efs_sqlite.calibration import Calibration, calibrate, load_profile, save_profile
from efs_sqlite.efs_model import PROFILES, EFSModel
from efs_sqlite.errors import CalibrationError
from efs_sqlite.mountstats import OpStats, class_of, delta, find_mount, measured_profile, parse, read
from efs_sqlite.store import ShardStore

FIXTURES = Path(__file__).parent / "fixtures"
BEFORE, AFTER = FIXTURES / "mountstats-lambda-efs.txt", FIXTURES / "mountstats-lambda-efs-after.txt"


def test_the_kernels_format_is_parsed():
    mounts = read(BEFORE)
    assert sorted(mounts) == ["/", "/mnt/efs"]
    efs = mounts["/mnt/efs"]
    assert (efs.device, efs.fstype, efs.is_nfs, mounts["/"].is_nfs) == ("127.0.0.1:/", "nfs4", True, False)
    assert efs.options["vers"] == "4.1" and efs.options["wsize"] == "1048576" and "hard" in efs.options
    assert efs.ops["LOCK"] == OpStats(10, 10, 0, 2160, 1040, 0, 30, 32, 0)
    assert efs.ops["LOOKUP"].errors == 4  # the 9th field: statistics version 1.1
    assert len(efs.ops) == 54 and "BIND_CONN_TO_SESSION" in efs.ops
    # Statistics version 1.0 had no errors field: 8 numbers.
    head = "device s:/ mounted on /m with fstype nfs statvers=1.0\n\tper-op statistics\n"
    old = parse(head + "\tREAD: 1 1 0 2 3 0 4 5\n")
    assert old["/m"].ops["READ"] == OpStats(1, 1, 0, 2, 3, 0, 4, 5, 0)
    with pytest.raises(ValueError, match="8 or 9 numbers"):
        parse(head + "\tREAD: 1 2\n")
    with pytest.raises(ValueError, match="not a mountstats device line"):
        parse("device nothing\n")


def test_a_delta_is_what_happened_between_two_snapshots():
    d = delta(read(BEFORE), read(AFTER), "/mnt/efs")
    assert d["LOCK"] == OpStats(60, 60, 0, 12960, 6240, 1, 70, 76, 0)
    assert d["WRITE"].ops == 60 and d["WRITE"].execute_ms == 171
    assert d["SEQUENCE"].ops == 1 and d["COMMIT"].ops == 0 and d["NULL"].ops == 0
    with pytest.raises(ValueError, match="not in both snapshots"):
        delta(read(BEFORE), read(AFTER), "/mnt/other")


def test_the_deltas_make_a_profile_per_latency_class():
    d = delta(read(BEFORE), read(AFTER), "/mnt/efs")
    p = measured_profile(d, name="lambda-efs")
    assert p.lock_s == pytest.approx((76 + 39) / 1000 / (60 + 40))  # LOCK and LOCKU
    assert p.getattr_s == pytest.approx(41 / 1000 / 42)
    assert p.read_s == pytest.approx(21 / 1000 / 20)
    assert p.write_s == pytest.approx(171 / 1000 / 60)
    assert p.state_s == pytest.approx((33 + 22 + 29) / 1000 / (21 + 21 + 20))  # OPEN, CLOSE, REMOVE
    # No COMMIT was seen: the class keeps the base profile's delay, and the source says so.
    assert p.commit_s == PROFILES["elastic"].class_s("commit") and "commit from elastic" in p.source
    assert class_of("SEQUENCE") is None  # session upkeep is not a request the model makes


def test_the_mount_of_a_path_is_the_longest_nfs_mount_above_it():
    mounts = read(BEFORE)
    assert find_mount(mounts, "/mnt/efs/shards/a.sqlite").mountpoint == "/mnt/efs"
    assert find_mount(mounts, "/mnt/efs").mountpoint == "/mnt/efs"
    assert find_mount(mounts, "/mnt/efs-other") is None  # on "/", which is not NFS
    assert find_mount(mounts, "/tmp") is None


def test_calibrating_off_nfs_is_refused_clearly(tmp_path):
    if find_mount(read(), tmp_path) is not None:
        pytest.skip("this folder is on an NFS mount")
    with pytest.raises(CalibrationError, match=r"on no NFS mount.*needs the EFS mount"):
        calibrate(tmp_path)
    with pytest.raises(CalibrationError, match="rounds"):
        calibrate(tmp_path, rounds=0)


def test_calibrating_on_a_listed_nfs_mount_runs_the_workload_and_cleans_up(tmp_path):
    """A mount table that lists this folder as NFS: the workload runs, the scratch folder goes;
    the statistics file does not change here, so every delta is zero."""
    stats = tmp_path / "mountstats"
    stats.write_text(BEFORE.read_text().replace(" /mnt/efs ", f" {tmp_path} "))
    result = calibrate(tmp_path, rounds=3, mountstats=stats)
    assert result.mount == str(tmp_path) and result.rounds == 3 and result.seconds > 0
    assert all(s.ops == 0 for s in result.ops.values())
    assert [p.name for p in tmp_path.iterdir()] == ["mountstats"]
    assert result.as_answer()["ops"] == {}


@pytest.fixture
def loader(tmp_path: Path):
    module = import_handler("loader", tmp_path / "efs-mount")
    yield module
    module.STORE.close()


def test_the_loader_answers_calibrate_clearly_without_an_nfs_mount(loader):
    answer = loader.handler({"action": "calibrate"}, LambdaContext(function_name="efs-sqlite-loader"))
    json.dumps(answer)
    if answer["ok"]:
        pytest.skip("this folder is on an NFS mount")
    assert "on no NFS mount" in answer["error"] and "calibration needs the EFS mount" in answer["error"]
    bad = loader.handler({"action": "calibrate", "rounds": "many"}, LambdaContext())
    assert not bad["ok"] and "'rounds' must be an integer" in bad["error"]
    extra = loader.handler({"action": "calibrate", "sql": "x"}, LambdaContext())
    assert not extra["ok"] and "does not take ['sql']" in extra["error"]


def test_remote_calibrate_passes_the_loaders_answer_or_its_refusal(loader):
    class InProcessLambda:
        def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:
            assert (FunctionName, InvocationType) == ("efs-sqlite-local-loader", "RequestResponse")
            answer = json.dumps(loader.handler(json.loads(Payload), LambdaContext())).encode()
            return {"StatusCode": 200, "Payload": io.BytesIO(answer)}

    stack = aws.Stack(
        "local", "us-east-1", "vpc", (), "sg-1", "sg-2", "fs", "fsap", "arn:ap", "arn:role",
        "efs-sqlite-local-graphql", "efs-sqlite-local-loader", "https://x", "AWS_IAM",
    )  # fmt: skip
    with pytest.raises(CalibrationError, match=r"the loader refused it: .*on no NFS mount"):
        aws.remote_calibrate(stack, rounds=2, client=InProcessLambda())


def test_a_saved_profile_loads_and_drives_the_model(tmp_path):
    ops = delta(read(BEFORE), read(AFTER), "/mnt/efs")
    answer = Calibration("/mnt/efs", 20, 1.5, ops).as_answer()
    profile = Calibration.from_answer(json.loads(json.dumps(answer))).profile("lambda-efs")
    assert profile == measured_profile(ops, name="lambda-efs", source=profile.source.split("; ")[0])
    loaded = load_profile(save_profile(profile, tmp_path / "profiles" / "lambda-efs.json"))
    assert loaded == profile
    with (
        EFSModel("calibrated-model", profile=loaded) as model,
        ShardStore(tmp_path / "s", vfs=model.name) as s,
    ):
        s.insert("claim_type_code", 1, "MOTOR")
        s.get("claim_type_code", 1)
        with model.accounting() as counted:
            s.get("claim_type_code", 1)
    # The warm read: 4 lock round trips, a GETATTR and a READ, at the measured delays.
    expected = 4 * loaded.lock_s + loaded.getattr_s + loaded.read_s
    assert counted.modelled_latency_s == pytest.approx(expected)
