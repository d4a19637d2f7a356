"""`pyblob user|key|quota` as real processes against a temporary data dir."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from processes import RunPyblob, Server, StartServer

from objstore import Store


def ok(run: RunPyblob, *args: str) -> str:
    result = run(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def ok_json(run: RunPyblob, *args: str) -> Any:
    return json.loads(ok(run, *args, "--json"))


def secret_of(data_dir: Path, access_key: str) -> str | None:
    store = Store(data_dir)
    try:
        record = store.accounts.lookup_key(access_key)
        return record.secret_key if record else None
    finally:
        store.close()


def test_user_add_json_has_exactly_the_credentials(run_pyblob: RunPyblob, data_dir: Path) -> None:
    creds = ok_json(run_pyblob, "user", "add", "alice")
    assert set(creds) == {"user", "access_key", "secret_key", "token"}
    assert creds["user"] == "alice"
    assert creds["token"].startswith("pbt_")
    assert secret_of(data_dir, creds["access_key"]) == creds["secret_key"]


def test_imported_key_pair_with_slash_plus_equals_round_trips(run_pyblob: RunPyblob, data_dir: Path) -> None:
    args = ("user", "add", "bob", "--access-key", "my/key+1", "--secret-key", "abc/def+ghi==")
    creds = ok_json(run_pyblob, *args)
    assert (creds["access_key"], creds["secret_key"]) == ("my/key+1", "abc/def+ghi==")
    keys = ok_json(run_pyblob, "key", "list", "bob")
    assert [k["access_key"] for k in keys] == ["my/key+1"]
    assert "abc/def+ghi==" not in ok(run_pyblob, "key", "list")
    assert secret_of(data_dir, "my/key+1") == "abc/def+ghi=="


def test_user_show_and_list_never_print_secrets(run_pyblob: RunPyblob) -> None:
    creds = ok_json(run_pyblob, "user", "add", "carol")
    shown = ok(run_pyblob, "user", "show", "carol") + ok(run_pyblob, "user", "show", "carol", "--json")
    listed = ok(run_pyblob, "user", "list") + ok(run_pyblob, "user", "list", "--json")
    for text in (shown, listed):
        assert "carol" in text
        assert creds["secret_key"] not in text and creds["token"] not in text
    details = ok_json(run_pyblob, "user", "show", "carol")
    assert [k["access_key"] for k in details["keys"]] == [creds["access_key"]]
    assert details["usage_bytes"] == 0 and details["buckets"] == []


def test_key_add_list_revoke(run_pyblob: RunPyblob) -> None:
    first = ok_json(run_pyblob, "user", "add", "dave")["access_key"]
    second = ok_json(run_pyblob, "key", "add", "dave")
    assert set(second) == {"user", "access_key", "secret_key"}
    listed = {k["access_key"] for k in ok_json(run_pyblob, "key", "list", "dave")}
    assert listed == {first, second["access_key"]}

    ok(run_pyblob, "key", "revoke", first)
    assert [k["access_key"] for k in ok_json(run_pyblob, "key", "list")] == [second["access_key"]]
    again = run_pyblob("key", "revoke", first)
    assert again.returncode == 2
    assert first in again.stderr


def test_quota_set_accepts_human_sizes(run_pyblob: RunPyblob) -> None:
    ok(run_pyblob, "user", "add", "erin", "--max-object-size", "1G")
    ok(run_pyblob, "quota", "set", "erin", "10MiB")
    details = ok_json(run_pyblob, "user", "show", "erin")
    assert (details["quota"], details["max_object_size"]) == (10 * 1024**2, 1024**3)
    ok(run_pyblob, "quota", "set", "erin", "unlimited")
    assert ok_json(run_pyblob, "user", "show", "erin")["quota"] == 0


def test_bad_size_is_a_usage_error(run_pyblob: RunPyblob) -> None:
    ok(run_pyblob, "user", "add", "frank")
    result = run_pyblob("quota", "set", "frank", "10 parsecs")
    assert result.returncode == 2
    assert "invalid size '10 parsecs'" in result.stderr
    assert "Traceback" not in result.stderr


def test_limits_past_8_PiB_are_refused_and_the_user_stays_as_it_was(run_pyblob: RunPyblob) -> None:
    """A quota of 99999999999999999999999999 bytes was kept as a float: `user list` showed
    `9.313225746154786e+16GiB` and the REST API's `/user` could not answer with it."""
    ok(run_pyblob, "user", "add", "hugo")
    ok(run_pyblob, "quota", "set", "hugo", "1G")
    too_large = [("99999999999999999999999999",), ("0", "--max-object-size", "9PiB"), ("0", "--max-objects", "1" * 20)]
    for args in too_large:
        result = run_pyblob("quota", "set", "hugo", *args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert "at most" in result.stderr and "Traceback" not in result.stderr
    details = ok_json(run_pyblob, "user", "show", "hugo")
    assert (details["quota"], details["max_object_size"], details["max_objects"]) == (1024**3, 0, 0)


def test_store_errors_are_one_line_exit_2(run_pyblob: RunPyblob) -> None:
    ok(run_pyblob, "user", "add", "gina")
    for args in (("user", "add", "gina"), ("user", "show", "nobody"), ("key", "add", "gina", "--access-key", "x")):
        result = run_pyblob(*args)
        assert result.returncode == 2, args
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stderr.startswith("Error: ")


def test_user_remove(run_pyblob: RunPyblob) -> None:
    key = ok_json(run_pyblob, "user", "add", "hank")["access_key"]
    ok(run_pyblob, "user", "remove", "hank")
    assert ok_json(run_pyblob, "user", "list") == []
    assert ok_json(run_pyblob, "key", "list") == []
    assert run_pyblob("key", "revoke", key).returncode == 2


def test_data_dir_from_environment(run_pyblob: RunPyblob, tmp_path: Path) -> None:
    env = {"PYBLOB_DATA_DIR": str(tmp_path / "elsewhere")}
    result = run_pyblob("user", "add", "ivy", env=env, with_data_dir=False)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "elsewhere" / "meta").is_dir()


def test_user_add_while_server_runs(server: Server, run_pyblob: RunPyblob) -> None:
    creds = ok_json(run_pyblob, "user", "add", "judy")
    assert creds["user"] == "judy"
    assert {u["user"] for u in ok_json(run_pyblob, "user", "list")} == {"admin", "judy"}
    assert httpx.get(server.url + "/health").status_code == 200


def test_new_users_are_unlimited_unless_configured(run_pyblob: RunPyblob) -> None:
    """No quota and no per-object limit by default (empty variables mean "not set"); the public
    upload service example of the README (the seed's 10 MiB / 500 MiB) when configured."""
    unset = {"PYBLOB_MAX_OBJECT_SIZE": "", "PYBLOB_DEFAULT_QUOTA": ""}
    assert run_pyblob("user", "add", "sam", env=unset).returncode == 0
    details = ok_json(run_pyblob, "user", "show", "sam")
    assert (details["quota"], details["max_object_size"]) == (0, 0)
    seed = {"PYBLOB_MAX_OBJECT_SIZE": "10MiB", "PYBLOB_DEFAULT_QUOTA": "500MiB"}
    assert run_pyblob("user", "add", "pat", env=seed).returncode == 0
    details = ok_json(run_pyblob, "user", "show", "pat")
    assert (details["quota"], details["max_object_size"]) == (500 * 1024**2, 10 * 1024**2)


def test_the_first_admin_has_no_limits_whatever_the_defaults(run_pyblob: RunPyblob, start_server: StartServer) -> None:
    start_server(env={"PYBLOB_MAX_OBJECT_SIZE": "10MiB", "PYBLOB_DEFAULT_QUOTA": "500MiB"}).stop()
    details = ok_json(run_pyblob, "user", "show", "admin")
    assert (details["quota"], details["max_object_size"]) == (0, 0)


def test_quota_set_can_limit_object_size_and_count(run_pyblob: RunPyblob) -> None:
    ok(run_pyblob, "user", "add", "olga")
    ok(run_pyblob, "quota", "set", "olga", "1G", "--max-object-size", "5MiB", "--max-objects", "100")
    details = ok_json(run_pyblob, "user", "show", "olga")
    assert (details["quota"], details["max_object_size"], details["max_objects"]) == (1024**3, 5 * 1024**2, 100)


def test_token_create_list_revoke(run_pyblob: RunPyblob, data_dir: Path) -> None:
    first = json.loads(ok(run_pyblob, "user", "add", "tina", "--json"))["token"]
    second = ok_json(run_pyblob, "token", "create", "tina")["token"]
    listed = ok_json(run_pyblob, "token", "list", "tina")
    assert [t["prefix"] for t in listed] == [first[:8], second[:8]]
    assert first not in ok(run_pyblob, "token", "list", "tina")
    assert ok(run_pyblob, "token", "revoke", "tina", second).startswith("revoked 1 token")  # given whole
    store = Store(data_dir)
    try:
        assert store.accounts.user_for_token(second) is None
        assert store.accounts.user_for_token(first) == "tina"
    finally:
        store.close()
    assert run_pyblob("token", "revoke", "tina").returncode == 2  # neither a prefix nor --all
    assert run_pyblob("token", "revoke", "tina", "pbt_nope").returncode == 2
    ok(run_pyblob, "token", "revoke", "tina", "--all")
    assert ok_json(run_pyblob, "token", "list", "tina") == []
