"""A worker node lost in the middle of a run: Ray reruns its range elsewhere and the archive is
still exact. Its own cluster, after the shared one of test_cluster.py has stopped."""
import time

from nzip_ray import sample
from nzip_ray.local_cluster import LocalCluster
from runs import members, nzip_ray, plain_decode

MIB = 1 << 20


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
