"""User errors: one line naming the problem, exit status 1, no traceback, and no output (an
existing one untouched). No cluster is needed: each is caught before one would be used."""
from runs import nzip_ray


def test_missing_input_is_a_clear_error_and_writes_nothing(nzip_bin, tmp_path):
    out = tmp_path / "out.nz"
    run = nzip_ray("compress", "--fast", tmp_path / "absent.txt", "-o", out, "--address", "127.0.0.1:1", nzip_bin=nzip_bin)
    assert run.returncode == 1
    assert "absent.txt: no such file or directory" in run.stderr
    assert "Traceback" not in run.stderr
    assert list(tmp_path.iterdir()) == []


def test_user_errors_are_one_line_and_leave_no_output(nzip_bin, tmp_path):
    data = tmp_path / "in.txt"
    data.write_bytes(b"some text\n" * 100)
    out = tmp_path / "out.nz"
    out.write_bytes(b"keep me")

    def fails(*args, says: str):
        run = nzip_ray(*args, nzip_bin=nzip_bin)
        assert run.returncode == 1, run.stderr
        assert says in run.stderr, run.stderr
        assert "Traceback" not in run.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.nz"]
        assert out.read_bytes() == b"keep me"

    fails("compress", "--fast", data, "-o", out, says="out.nz already exists")
    fails("compress", "--fast", data, "-o", out, "-f", "--address", "127.0.0.1:1", says="no Ray cluster answers at 127.0.0.1:1")
    fails("compress", "-3", "--model", tmp_path / "none.gguf", data, "-o", out, "-f", says="none.gguf")
    fails("decompress", data, "-o", out, "-f", says="in.txt")
    fails("compress", "--fast", data, "-o", out, "-f", "--nzip", tmp_path / "no-nzip", says="nzip binary not found")
