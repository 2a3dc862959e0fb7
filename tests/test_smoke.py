from support import agent_records, send_records


def test_daemon_writes_a_sent_record_to_the_file(daemon, tmp_path):
    d = daemon()
    send_records(d.socket_path, [{"level": "info", "message": "hello", "agent": "a"}])
    assert d.stop() == 0
    [record] = agent_records(tmp_path / "agent.log")
    assert (record["message"], record["agent"], record["level"]) == ("hello", "a", "info")
