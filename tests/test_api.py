"""The Python API (`verifier.verify`, `verifier.load_result`) and the OpenAI SDK's environment conventions."""

from __future__ import annotations

import json

import pytest
from conftest import one_line_exit_2, run_cli

import verifier
from verifier.api import PROFILES, resolve_api_key, resolve_base_url, run_config, run_dir_of
from verifier.errors import VerifierError


def test_openai_variables_are_the_defaults(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://env.example/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    config = run_config(model="m")
    assert (config.base_url, config.api_key) == ("http://env.example/v1", "sk-env")


def test_arguments_win_over_the_openai_variables(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://env.example/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.setenv("MY_KEY", "sk-mine")
    assert resolve_base_url("http://flag.example/v1") == "http://flag.example/v1"
    assert resolve_api_key("sk-flag", "MY_KEY") == "sk-flag"
    assert resolve_api_key(None, "MY_KEY") == "sk-mine"


def test_a_resumed_run_keeps_its_own_endpoint(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://env.example/v1")
    assert resolve_base_url(None, resume=tmp_path) is None


def test_a_named_key_variable_must_be_set(monkeypatch):
    monkeypatch.delenv("MY_UNSET_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    with pytest.raises(VerifierError, match="MY_UNSET_KEY is not set"):
        resolve_api_key(None, "MY_UNSET_KEY")


def test_without_variables_the_builtin_provider_is_used(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    config = run_config()
    assert config.base_url is None and config.api_key is None


def test_the_key_is_not_in_the_config_as_written(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-never-written")
    config = run_config(base_url="http://x.example/v1", model="m")
    assert config.api_key == "sk-never-written"
    assert "sk-never-written" not in config.model_dump_json() + repr(config)


@pytest.mark.slow
def test_verify_runs_the_builtin_provider_and_load_result_reads_it_back(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    result = verifier.verify(suites=["harmony"], apis=["chat"], out=tmp_path)
    assert result.verdict == "pass"
    run_dir = run_dir_of(result, tmp_path)
    assert (run_dir / "report.html").is_file()
    again = verifier.load_result(run_dir)
    assert again.run_id == result.run_id and [c.verdict for c in again.checks] == [c.verdict for c in result.checks]
    faulty = verifier.verify(suites=["harmony"], apis=["chat"], out=tmp_path, faults=["raw-harmony-content"])
    assert faulty.verdict == "fail"
    assert {c.id: c.verdict.value for c in faulty.checks}["parsing.no_control_tokens"] == "fail"


def test_load_result_refuses_what_is_not_a_result(tmp_path):
    bad = tmp_path / "result.json"
    bad.write_text(json.dumps({"hello": 1}))
    with pytest.raises(VerifierError, match="not a result.json"):
        verifier.load_result(tmp_path)


def test_the_quick_profile_sends_the_chat_api_only_and_apis_win():
    assert run_config(profile="quick").apis == PROFILES["quick"] and "chat-stream" not in PROFILES["quick"]
    assert run_config(profile="full").apis is None
    assert run_config(profile="quick", apis=["responses"]).apis == ["responses"]


def test_an_unknown_profile_is_one_line_and_exit_2():
    with pytest.raises(VerifierError, match="unknown profile 'fast'"):
        run_config(profile="fast")
    one_line_exit_2(run_cli("run", "--profile", "fast"))
