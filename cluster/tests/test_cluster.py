"""nzip-ray against a real Ray cluster on this machine (a head and two worker nodes, separate
processes): every output is checked byte for byte, and decoded by plain nzip, no Ray."""
import time

from nzip_ray import sample
from nzip_ray.local_cluster import LocalCluster
from runs import members, nzip_ray, plain_decode

MIB = 1 << 20
FAST_CHUNK = 512 << 10


def test_fast_file_in_ranges_of_whole_chunks(cluster, nzip_bin, tmp_path):
    data = tmp_path / "mixed.bin"
    sample.write(data, 6 * MIB + 12345)
    archive = tmp_path / "mixed.bin.nz"
    run = nzip_ray("compress", "--fast", "--range-mb", 1, data, "--address", cluster.address, nzip_bin=nzip_bin)
    assert run.returncode == 0, run.stderr
    assert "7 parts" in run.stderr

    # One member per range; every range but the last is exactly two 512 KiB chunks' worth.
    sizes = [m["original_bytes"] for m in members(nzip_bin, archive)]
    assert sizes == [2 * FAST_CHUNK] * 6 + [12345]
    assert plain_decode(nzip_bin, archive) == data.read_bytes()

    back = tmp_path / "back.bin"
    run = nzip_ray("decompress", archive, "-o", back, "--address", cluster.address, nzip_bin=nzip_bin)
    assert run.returncode == 0, run.stderr
    assert "7 parts" in run.stderr, "decoded member by member on the cluster"
    assert back.read_bytes() == data.read_bytes()


def test_shipped_input_matches_the_file(cluster, nzip_bin, tmp_path):
    data = tmp_path / "shipped.bin"
    sample.write(data, 3 * MIB, seed=5)
    archive = tmp_path / "out.nz"
    run = nzip_ray(
        "compress", "--fast", "--ship-input", "--range-mb", 0.5, data, "-o", archive, "--address", cluster.address,
        nzip_bin=nzip_bin,
    )
    assert run.returncode == 0, run.stderr
    assert len(members(nzip_bin, archive)) == 6
    assert plain_decode(nzip_bin, archive) == data.read_bytes()


def test_directory_gives_one_archive_per_file(cluster, nzip_bin, tmp_path):
    tree = tmp_path / "tree"
    (tree / "sub" / "deeper").mkdir(parents=True)
    sample.write(tree / "big.bin", 2 * MIB + 7, seed=1)
    sample.write(tree / "sub" / "small.txt", 5000, seed=2)
    (tree / "sub" / "deeper" / "empty").write_bytes(b"")
    out = tmp_path / "archives"
    run = nzip_ray("compress", "--fast", "--range-mb", 1, tree, "-o", out, "--address", cluster.address, nzip_bin=nzip_bin)
    assert run.returncode == 0, run.stderr
    originals = sorted(p.relative_to(tree) for p in tree.rglob("*") if p.is_file())
    archives = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert archives == [p.with_name(p.name + ".nz") for p in originals]
    for rel in originals:
        assert plain_decode(nzip_bin, out / f"{rel}.nz") == (tree / rel).read_bytes(), rel
    assert [m["original_bytes"] for m in members(nzip_bin, out / "big.bin.nz")] == [MIB, MIB, 7]


def test_llm_level_with_the_tiny_model(cluster, nzip_bin, tiny_model, tmp_path):
    text = tmp_path / "alice.txt"
    text.write_bytes((sample.REPO / "corpus" / "alice29.txt").read_bytes()[:40_000])
    archive = tmp_path / "alice.nz"
    # Groups of two 8 KiB chunks: 16 KiB ranges, so three tasks run the model.
    run = nzip_ray(
        "compress", "-3", "--model", tiny_model, "--chunk-size", 8192, "--seqs", 2, "--range-mb", 0.02,
        text, "-o", archive, "--address", cluster.address, nzip_bin=nzip_bin,
    )
    assert run.returncode == 0, run.stderr
    found = members(nzip_bin, archive)
    assert [m["original_bytes"] for m in found] == [16384, 16384, 40_000 - 32768]
    assert any(m["model"] is not None for m in found), "some chunks were coded by the model"
    assert plain_decode(nzip_bin, archive, "--model", tiny_model) == text.read_bytes()

    back = tmp_path / "alice.back"
    run = nzip_ray("decompress", archive, "-o", back, "--model", tiny_model, "--address", cluster.address, nzip_bin=nzip_bin)
    assert run.returncode == 0, run.stderr
    assert back.read_bytes() == text.read_bytes()


def test_a_lost_worker_node_costs_only_its_range(nzip_bin, tmp_path):
    """Worker node 2 is killed (raylet, Ray workers and the nzip it runs) while it codes a range,
    after the first member has been written; Ray runs that range again elsewhere."""
    data = tmp_path / "big.bin"
    sample.write(data, 10 * MIB, seed=9)
    archive = tmp_path / "big.nz"
    log = tmp_path / "driver.log"
    with LocalCluster(workers=2) as cluster, open(log, "w") as driver_output:
        driver = nzip_ray(
            "compress", "--fast", "--range-mb", 0.5, data, "-o", archive, "--address", cluster.address,
            nzip_bin=nzip_bin, stdout=driver_output, stderr=driver_output,
        )
        staged = tmp_path / f".{archive.name}.nzip-ray-{driver.pid}"
        killed = False
        while driver.poll() is None and not killed:
            first_member_written = staged.exists() and staged.stat().st_size > 0
            if first_member_written and cluster.running(2, "--input-range"):
                cluster.kill_worker(2)
                killed = True
            time.sleep(0.05)
        driver.wait(timeout=600)
    assert killed, "worker 2 never ran a range while the driver ran:\n" + log.read_text()
    assert driver.returncode == 0, log.read_text()
    assert len(members(nzip_bin, archive)) == 20
    assert plain_decode(nzip_bin, archive) == data.read_bytes()


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
