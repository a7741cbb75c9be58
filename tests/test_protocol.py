"""Host side of the agent protocol against a fake peer (pipes and a socket pair, no agent)."""

from __future__ import annotations

import json
import os
import socket
import time

import pytest

from harness import programs
from harness.errors import AgentError, ProgramError
from harness.protocol import AgentConnection


class FakePeer:
    """The agent's side of two pipes: what the host wrote can be read back, replies are scripted."""

    def __init__(self) -> None:
        self.host_r, self.peer_w = os.pipe()
        self.peer_r, self.host_w = os.pipe()
        self.conn = AgentConnection(self.host_r, self.host_w)

    def say(self, text: str | bytes) -> None:
        os.write(self.peer_w, text.encode() if isinstance(text, str) else text)

    def heard(self) -> dict:
        return json.loads(os.read(self.peer_r, 65536).decode().splitlines()[-1])

    def close(self) -> None:
        for fd in (self.host_r, self.peer_w, self.peer_r, self.host_w):
            try:
                os.close(fd)
            except OSError:
                pass


@pytest.fixture
def peer():
    p = FakePeer()
    yield p
    p.close()


def test_ready_event_info_is_returned_and_noise_before_it_ignored(peer):
    peer.say("[    0.000] Linux version 6.1\r\n\x00garbage {not json\n[1,2]\n")
    peer.say('{"event": "ready", "info": {"kernel": "6.1.0", "pid_max": 4096}}\n')
    assert peer.conn.wait_ready(1.0) == {"kernel": "6.1.0", "pid_max": 4096}
    assert "garbage {not json" in " ".join(peer.conn.noise)


def test_request_frames_one_json_line_with_an_id(peer):
    peer.say('{"id": 1, "ok": true, "result": "pong"}\n')
    assert peer.conn.request("ping", 1.0) == "pong"
    assert peer.heard() == {"id": 1, "op": "ping"}


def test_reply_split_across_reads_and_other_ids_are_skipped(peer):
    peer.conn.send("ping")  # id 1 times out on the host side; its late reply must not be taken for id 2
    peer.say('{"id": 1, "ok": true, "result": "late"}\nnoise\n{"id": 2, "ok": tr')
    peer.say('ue, "result": {"steps": []}}\n')
    assert peer.conn.request("run", 1.0, program={}) == {"steps": []}


def test_ok_false_is_a_program_error_carrying_the_trace(peer):
    peer.say('{"id": 1, "ok": false, "error": "StepError: bad step", "trace": "Traceback..."}\n')
    with pytest.raises(ProgramError, match="bad step") as info:
        peer.conn.request("run", 1.0, program={})
    assert info.value.trace == "Traceback..."


def test_silence_is_an_agent_error_after_the_timeout(peer):
    t0 = time.monotonic()
    with pytest.raises(AgentError, match="timed out") as info:
        peer.conn.request("ping", 0.2)
    assert not isinstance(info.value, ProgramError)
    assert 0.2 <= time.monotonic() - t0 < 1.0


def test_eof_is_an_agent_error(peer):
    os.close(peer.peer_w)
    with pytest.raises(AgentError, match="closed"):
        peer.conn.request("ping", 1.0)


def test_a_socket_works_through_file_objects():
    host, agent = socket.socketpair()
    with host, agent:
        conn = AgentConnection(host, host.makefile("wb"))
        agent.sendall(b'noise\n{"event": "ready", "info": {}}\n{"id": 1, "ok": true, "result": "pong"}\n')
        assert conn.wait_ready(1.0) == {}
        assert conn.request("ping", 1.0) == "pong"
        assert json.loads(agent.recv(4096)) == {"id": 1, "op": "ping"}


def test_callables_work_as_transport():
    chunks = [None, b'{"event":"ready","info":{"x":1}}\n']
    sent: list[bytes] = []
    conn = AgentConnection(lambda timeout: chunks.pop(0) if chunks else b"", sent.append)
    assert conn.wait_ready(1.0) == {"x": 1}
    with pytest.raises(AgentError):
        conn.request("ping", 1.0)
    assert sent == [b'{"id":1,"op":"ping"}\n']


def test_host_arena_constants_match_the_agent():
    from harness.agent import arena

    assert (programs.ARENA, programs.ARENA_SIZE, programs.GUARD_SIZE, programs.UNMAPPED) == (
        arena.ARENA, arena.ARENA_SIZE, arena.GUARD_SIZE, arena.UNMAPPED)
    assert (programs.ARENA32, programs.ARENA32_SIZE) == (arena.ARENA32, arena.ARENA32_SIZE)
    assert programs.ARENA32 + programs.ARENA32_SIZE <= 1 << 32
