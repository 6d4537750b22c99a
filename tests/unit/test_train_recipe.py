"""``src/train.py`` trains one model to the end, as the final stage does, so it takes the final stage's
learning rate (``final.optim.lr``), not the search's short-proxy one."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import compose_cfg


def test_train_takes_the_final_stages_learning_rate_not_the_searchs(tmp_path: Path) -> None:
    train = compose_cfg("train", [], tmp_path)
    search = compose_cfg("search", [], tmp_path)
    assert train.optim.lr == search.final.optim.lr  # one source: conf/final/default.yaml
    assert train.optim.lr != search.optim.lr  # the search's proxy lr is for its short trainings only
    assert train.optim.weight_decay == search.final.optim.weight_decay


def test_the_command_line_and_the_final_option_still_choose(tmp_path: Path) -> None:
    assert compose_cfg("train", ["optim.lr=0.01"], tmp_path).optim.lr == 0.01
    darts = compose_cfg("search", ["final=darts_eval"], tmp_path).final.optim.lr
    assert compose_cfg("train", ["final=darts_eval"], tmp_path).optim.lr == darts
    assert compose_cfg("train", ["final.optim.lr=0.03"], tmp_path).optim.lr == 0.03
