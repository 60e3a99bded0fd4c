"""The bench's reading of the pause meter (bench/bench.py, pauses_in) and of
/proc/diskstats (disk_counters): pure logic, no instance needed; it rides
along with the e2e run because that is where pytest runs.

pause-meter reports, per CPU, the spans in which that CPU did not run. The
bench calls the machine still only where every CPU's spans overlap, and clips
everything to the run's window; a mistake here would blame the machine for
a stall of carebot's own (or hide a machine pause).
"""

import importlib.util
import pathlib

import pytest

_spec = importlib.util.spec_from_file_location(
    "bench", pathlib.Path(__file__).resolve().parents[2] / "bench" / "bench.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def machine(cpus, *pauses):
    """pauses: (cpu, start s, ms) as pause-meter prints them."""
    return {"cpus": cpus, "pauses": [list(p) for p in pauses]}


def rounded(spans):
    return [(round(t, 6), round(ms, 3)) for t, ms in spans]


def test_overlapping_pauses_of_both_cpus_are_one_machine_pause():
    m = machine(2, (0, 100.000, 10), (1, 100.005, 15))
    spans, longest = bench.pauses_in(m, 0, 200)
    assert rounded(spans) == [(100.005, 5.0)]
    assert longest == pytest.approx(15)


def test_pauses_of_one_cpu_only_are_no_machine_pause():
    m = machine(2, (0, 100.000, 50), (0, 100.060, 50))
    spans, longest = bench.pauses_in(m, 0, 200)
    assert spans == []
    assert longest == pytest.approx(50)


def test_pauses_that_only_touch_do_not_overlap():
    m = machine(2, (0, 100.000, 10), (1, 100.010, 10))
    assert bench.pauses_in(m, 0, 200)[0] == []


def test_every_cpu_must_stand_still():
    m = machine(3, (0, 100.000, 20), (1, 100.000, 20))
    assert bench.pauses_in(m, 0, 200)[0] == []
    m["pauses"].append([2, 100.010, 5])
    assert rounded(bench.pauses_in(m, 0, 200)[0]) == [(100.01, 5.0)]


def test_one_long_pause_against_two_short_ones_is_two_machine_pauses():
    m = machine(2, (0, 100.000, 100), (1, 100.010, 10), (1, 100.050, 20))
    assert rounded(bench.pauses_in(m, 0, 200)[0]) == [(100.01, 10.0), (100.05, 20.0)]


def test_pauses_are_clipped_to_the_window():
    m = machine(2, (0, 99.990, 30), (1, 99.995, 30), (0, 300.0, 500))
    spans, longest = bench.pauses_in(m, 100.0, 200.0)
    assert rounded(spans) == [(100.0, 20.0)]
    assert longest == pytest.approx(25)
    assert bench.pauses_in(m, 200.0, 250.0) == ([], 0.0)


def test_slow_fsyncs_are_those_that_overlap_the_window():
    m = {"cpus": 2, "pauses": [], "slow_fsyncs": [[99.0, 500], [99.9, 150], [150.0, 20], [200.0, 30]]}
    assert bench.slow_fsyncs_in(m, 100.0, 200.0) == [150, 20]
    assert bench.slow_fsyncs_in({"cpus": 2, "pauses": []}, 100.0, 200.0) == []


DISKSTATS = """\
 254       0 vda 1719732 110963 86762594 2282833 21089948 918798 151331296 1705173 0 1352624 4463574 337127 437 172667752 31812 9294601 443754
 254       1 vda1 5 0 40 1 7 0 56 2 0 3 3 11 0 88 1 0 0
   8       0 sda 100 0 800 10 50 0 400 5 0 12 15
"""


def test_disk_counters_are_the_devices_discards_and_flushes():
    assert bench.disk_counters(DISKSTATS, (254, 0)) == dict(sectors_written=151331296, discards=337127,
                                                           flushes=9294601)
    assert bench.disk_counters(DISKSTATS, (254, 1)) == dict(sectors_written=56, discards=11, flushes=0)


def test_disk_counters_of_an_unknown_or_older_device_are_none():
    # sda's line is a kernel's from before discards and flushes were counted.
    assert bench.disk_counters(DISKSTATS, (8, 0)) is None
    assert bench.disk_counters(DISKSTATS, (9, 9)) is None
