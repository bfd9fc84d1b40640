"""The README's figures are the results table's (benchmarks.table), and the table reads the runs it should."""

from benchmarks import README, table


def run(code, x, file=table.RECALL, **extra):
    return {"file": file, "code": code, "commit": code[:3], "date": "2026-12-07", "command": "c",
            "cpu": {"model": "m", "flags": []}, "summary": {"validation_loss": x}, **extra}


def test_the_readme_quotes_the_table_as_it_renders_today():
    """Edit one figure of the README's generated block and this fails: regenerate with --write, or re-run."""
    assert table.block(README.read_text()) == table.render(table.load())


def test_a_figure_is_the_median_of_the_newest_code_s_runs_with_range_and_n():
    loss = next(f for f in table.FIGURES if f.key == "summary.validation_loss")
    runs = [run("old", 9.0), run("new", 6.0), run("new", 6.4), run("new", 6.1), run("new", 1.0, overrides=["x=1"]),
            run("new", 2.0, file="/tmp/elsewhere.json")]
    chosen = table.current(runs, table.RECALL)
    assert [r["summary"]["validation_loss"] for r in chosen] == [6.0, 6.4, 6.1]  # not the old code's, nor an -S run
    assert table.cell(chosen, loss) == "6.10 (6.00–6.40, n=3)"
    assert table.cell(chosen[:1], loss) == "6.00"
    assert table.cell([], loss) == "—"
