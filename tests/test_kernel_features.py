"""check_features: a kernel without what the suite needs is refused in one line naming the options."""

from __future__ import annotations

import pytest

from harness.errors import ConfigError
from harness.kernel_features import check_features, missing_optional

ALL = {"pid_ns": True, "user_ns": True, "ns_last_pid": True, "proc_sysctl": True}


def info(**changes: bool) -> dict:
    return {"kernel": "6.1.0", "features": {**ALL, **changes}}


def test_a_kernel_with_every_feature_passes():
    check_features(info())


def test_an_agent_without_a_feature_report_is_not_judged():
    check_features({"kernel": "6.1.0"})


def test_missing_pid_ns_names_config_pid_ns():
    with pytest.raises(ConfigError) as e:
        check_features(info(pid_ns=False))
    assert str(e.value) == ("kernel lacks CONFIG_PID_NS (unshare(CLONE_NEWPID) fails): "
                            "the suite needs pid namespaces")


def test_missing_user_ns_names_config_user_ns():
    with pytest.raises(ConfigError, match=r"^kernel lacks CONFIG_USER_NS \(no /proc/self/ns/user\)"):
        check_features(info(user_ns=False))


def test_missing_proc_sysctl_names_config_proc_sysctl():
    with pytest.raises(ConfigError, match="CONFIG_PROC_SYSCTL"):
        check_features(info(proc_sysctl=False))


def test_several_missing_options_are_all_named_on_one_line():
    with pytest.raises(ConfigError) as e:
        check_features(info(pid_ns=False, user_ns=False, proc_sysctl=False))
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.index("CONFIG_PID_NS") < msg.index("CONFIG_USER_NS") < msg.index("CONFIG_PROC_SYSCTL")


def test_a_feature_absent_from_the_report_counts_as_missing():
    features = dict(ALL)
    del features["user_ns"]
    with pytest.raises(ConfigError, match="CONFIG_USER_NS"):
        check_features({"features": features})


def test_missing_ns_last_pid_is_not_fatal():
    check_features(info(ns_last_pid=False))


def test_missing_ns_last_pid_gives_a_skip_reason_naming_checkpoint_restore():
    assert missing_optional(info(ns_last_pid=False), "ns_last_pid") == (
        "kernel lacks CONFIG_CHECKPOINT_RESTORE (no /proc/sys/kernel/ns_last_pid)")
    assert missing_optional(info(), "ns_last_pid") is None
    assert missing_optional({}, "ns_last_pid") is None


def test_the_host_agent_reports_every_feature_key(host_sandbox):
    from harness.targets.host import HostTarget

    with HostTarget() as t:
        feats = t.info.extra["agent"]["features"]
        assert set(ALL) <= set(feats)
        assert feats["pid_ns"] and feats["user_ns"] and feats["proc_sysctl"]
        assert t.ping() is None
        assert t._conn().request("info", 5.0)["features"] == feats
