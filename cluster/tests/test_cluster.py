"""nzip-ray against a real Ray cluster on this machine (a head and two worker nodes, separate
processes): every output is checked byte for byte, and decoded by plain nzip, no Ray."""
from nzip_ray import sample
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


def test_nzip_failing_in_a_task_stops_the_run_with_its_message(cluster, nzip_bin, tmp_path):
    # An nzip that answers the driver's own questions but fails every range, as a node with a
    # broken install would.
    broken = tmp_path / "broken-nzip"
    broken.write_text(
        "#!/bin/sh\n"
        'case "$*" in *0..0*|info*) exec "$REAL_NZIP" "$@";; esac\n'
        'echo "nzip: broken on purpose" >&2; exit 1\n'
    )
    broken.chmod(0o755)
    data = tmp_path / "in.bin"
    sample.write(data, MIB, seed=3)
    out = tmp_path / "out.nz"
    run = nzip_ray(
        "compress", "--fast", data, "-o", out, "--nzip", broken, "--address", cluster.address,
        nzip_bin=nzip_bin, extra_env={"REAL_NZIP": nzip_bin},
    )
    assert run.returncode == 1
    assert "range 0..1048576 (1 of 1): nzip failed on node" in run.stderr and "broken on purpose" in run.stderr
    assert "Traceback" not in run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken-nzip", "in.bin"]
