"""The tables of docs/results.md equal what their commands print from the committed run records, and
``python -m learning.analysis docs`` keeps them so (learning/analysis/docs.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from learning.analysis.__main__ import main
from tests.test_results import sweep  # noqa: F401  (the fixture: a synthetic sweep folder)

ROOT = Path(__file__).resolve().parent.parent


def test_every_table_of_the_results_page_is_what_its_command_prints_from_the_records(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    code = main(["docs", "docs/results.md", "--check"])
    assert code == 0, capsys.readouterr().err
    assert "0 table(s) would change" in capsys.readouterr().out
    assert (ROOT / "docs/results.md").read_text().count("<!-- output -->") >= 4


def page(sweep_dir: Path, body: str, command: str = "table") -> str:
    return (f"# Results\n\nProse stays.\n\n<!-- output -->\n```bash\npython -m learning.analysis {command} {sweep_dir} "
            f"--env_steps 500000 --aggregate mean --methods Separated --reps 300\n```\n{body}<!-- /output -->\n\nMore prose.\n")


def test_a_stale_table_fails_the_check_and_is_rewritten_to_the_commands_output(sweep, tmp_path, capsys):  # noqa: F811
    assert main(["table", str(sweep), "--env_steps", "500000", "--aggregate", "mean", "--methods", "Separated",
                 "--reps", "300"]) == 0
    printed = capsys.readouterr().out.strip("\n")
    assert "Separated + QMP" not in printed and "| Separated |" in printed  # --methods keeps one method
    markdown = tmp_path / "results.md"
    stale = page(sweep, "\n| an | old | table |\n")
    markdown.write_text(stale)
    assert main(["docs", str(markdown), "--check"]) == 1
    assert "1 table(s) differ" in capsys.readouterr().err and markdown.read_text() == stale
    assert main(["docs", str(markdown)]) == 0
    assert markdown.read_text() == page(sweep, f"\n{printed}\n")  # prose around the block untouched
    assert main(["docs", str(markdown), "--check"]) == 0


def test_markers_shown_in_a_four_backtick_fence_are_an_example_not_a_block(sweep, tmp_path, capsys):  # noqa: F811
    """A page that shows the markup (docs/reproducing.md does) keeps its example as written; only the real
    block is filled."""
    example = ("````markdown\n<!-- output -->\n```bash\npython -m learning.analysis table x\n```\n\n"
               "(the table the command printed)\n<!-- /output -->\n````\n\n")
    markdown = tmp_path / "page.md"
    markdown.write_text(example + page(sweep, "\n| an | old | table |\n"))
    assert main(["docs", str(markdown)]) == 0
    text = markdown.read_text()
    assert text.startswith(example) and "| an | old | table |" not in text and "| Separated |" in text
    markdown.write_text(example)
    assert main(["docs", str(markdown), "--check"]) == 2
    assert "has no '<!-- output -->' block" in capsys.readouterr().err


@pytest.mark.parametrize("text, message", [
    ("<!-- output -->\n```bash\npython -m learning.analysis figure {sweep} --out x\n```\n<!-- /output -->\n",
     "must hold a 'python -m learning.analysis table ...' or '... compare ...' command"),
    ("<!-- output -->\n```bash\npython -m learning.analysis table {sweep} --out x\n```\n<!-- /output -->\n",
     "without --out"),
    ("<!-- output -->\n| no command |\n<!-- /output -->\n", "must be followed by a one-line ```bash command"),
    ("<!-- output -->\n```bash\npython -m learning.analysis table {sweep} --methods Nobody\n```\n<!-- /output -->\n",
     "no run has the method label 'Nobody'"),
    ("no blocks at all\n", "has no '<!-- output -->' block"),
])
def test_bad_blocks_are_one_line_errors_and_leave_the_file_alone(sweep, tmp_path, capsys, text, message):  # noqa: F811
    markdown = tmp_path / "page.md"
    markdown.write_text(text.format(sweep=sweep))
    assert main(["docs", str(markdown)]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1
    assert markdown.read_text() == text.format(sweep=sweep)
