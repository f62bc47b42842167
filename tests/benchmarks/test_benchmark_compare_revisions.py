"""Smoke test of benchmarks/compare_revisions.py on a two-block model and a batch of 2: a baseline from a checkout
folder or a git revision is timed against this checkout, pair by pair, after its logits are checked equal; a
baseline that computes something else, or that does not exist, is refused in one line. Speed itself is the
benchmark's business, not a test's."""

import json
import shutil

import pytest
import torch

from benchmarks import compare_revisions
from dems_training import UserInputError


SMALL = ["--override", "num_hidden_layers=2", "merge_layers=[1,2]", "--batch_size", "2", "--threads", "1"]


@pytest.fixture(autouse=True)
def keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_a_checkout_folder_against_this_one(tmp_path, capsys):
    path = tmp_path / "out.json"
    argv = ["--baseline", str(compare_revisions.REPO), *SMALL, "--warmup", "0", "--iters", "3"]
    report = compare_revisions.run([*argv, "--attn_implementation", "sdpa", "eager", "--json", str(path)])
    assert json.loads(path.read_text()) == report
    assert [(r["attn_implementation"], r["logits_equal"]) for r in report["results"]] == [("sdpa", True),
                                                                                          ("eager", True)]
    for result in report["results"]:
        for phase in ("inference", "train"):
            figures = result[phase]
            assert figures["pairs"] == 3 and len(figures["baseline_times_s"]) == len(figures["candidate_times_s"]) == 3
            ratios = sorted(c / b for b, c in zip(figures["baseline_times_s"], figures["candidate_times_s"],
                                                  strict=True))  # fmt: skip
            assert figures["ratio_median"] == pytest.approx(ratios[1])
            assert figures["ratio_p10"] <= figures["ratio_median"] <= figures["ratio_p90"]
    assert "ratio = candidate / baseline" in capsys.readouterr().out


def test_a_git_revision_inference_only(tmp_path):
    report = compare_revisions.run(["--baseline", "HEAD", *SMALL, "--warmup", "1", "--iters", "1", "--skip_train"])
    (result,) = report["results"]
    assert "train" not in result and result["inference"]["pairs"] == 1
    assert report["environment"]["baseline"].startswith("HEAD (")


def test_a_baseline_that_computes_something_else_is_refused(tmp_path):
    folder = tmp_path / "changed" / "modeling_dems"
    shutil.copytree(compare_revisions.REPO / "modeling_dems", folder)
    code = (folder / "modeling_dems.py").read_text()
    assert "(scores * self.scale).softmax(dim=2)" in code
    (folder / "modeling_dems.py").write_text(code.replace("(scores * self.scale).softmax(dim=2)",
                                                          "(scores * self.scale).softmax(dim=3)"))
    with pytest.raises(UserInputError, match="the baseline's logits differ from the candidate's"):
        compare_revisions.run(["--baseline", str(folder.parent), *SMALL, "--warmup", "0", "--iters", "1"])


def test_an_unknown_baseline_is_one_line_with_exit_code_2(capsys):
    assert compare_revisions.main(["--baseline", "no-such-revision-xyz", *SMALL]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("compare_revisions.py: error: --baseline no-such-revision-xyz is neither a folder nor a "
                          "git revision with modeling_dems/modeling_dems.py")
