"""Before a first converge the benchmarks time a file creation: on ext4 without a journal, right after
50,000 kits were deleted, creating files cost 4 to 25 times as much for eight minutes or more, and a
first converge then measured the file system rather than teleshift. They say so instead of keeping quiet."""
import teleshift_cli.bench as bench


def test_a_creation_is_timed_on_real_files_that_stay(tmp_path):
    cost = bench.file_creation_us(tmp_path, count=50)
    assert cost > 0
    (probe,) = tmp_path.iterdir()  # one new folder, its files kept (deleting them frees inodes now)
    assert len(list(probe.iterdir())) == 50


def test_a_slow_file_system_is_named_and_a_quiet_one_is_not(tmp_path, monkeypatch):
    said = []
    monkeypatch.setattr(bench, "file_creation_us", lambda where: 240.0)
    assert bench.check_file_system(tmp_path, said.append) == 240.0
    assert len(said) == 1 and "240 µs" in said[0] and str(tmp_path) in said[0]
    said.clear()
    monkeypatch.setattr(bench, "file_creation_us", lambda where: 18.0)
    assert bench.check_file_system(tmp_path, said.append) == 18.0
    assert said == []
