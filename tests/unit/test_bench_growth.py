"""A benchmark keeps its figures per size; with both sizes there it prints the cost per person at
50,000 over the cost per person at 5,000, each figure rounded for the reader."""
import teleshift_cli.bench as bench


def test_growth_needs_both_sizes_then_compares_the_cost_per_person(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "LOG_DIR", tmp_path)
    said = []
    assert bench.growth("desktop", "h5", 5000, {"first_s": 13.268331376995775}, ["first_s"], said.append) == {}
    assert "run the other size" in said[-1]
    said.clear()
    ratios = bench.growth("desktop", "h5", 50000, {"first_s": 96.19132152300153}, ["first_s"], said.append)
    assert ratios == {"first_s": 0.72}  # (96.19 / 50,000) / (13.27 / 5,000)
    assert said == ["growth first_s: 13.27 s for 5000 -> 96.19 s for 50000: 0.72x the cost per person"]
    other = bench.growth("desktop", "h1", 50000, {"first_s": 90.0}, ["first_s"], said.append)
    assert other == {}  # another number of hosts is another benchmark
