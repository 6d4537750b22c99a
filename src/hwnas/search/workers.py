"""Several processes on one study: extra local worker processes that run a function they are given.

``search.n_workers=K`` makes the main process create the study (SQLite must exist before anyone else
opens it), then start K-1 extra worker processes that run the same ask/tell loop against the same
storage and write no outputs; the main process waits for them and writes the outputs once. Launches on
other machines that share ``search.storage`` + ``search.study_name`` cooperate the same way, and each of
those writes the outputs of the study as it stands when it finishes. A worker that dies is recovered by
the heartbeats of :mod:`hwnas.search.storage.heartbeats`.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger("hwnas.search")


def is_main_worker(cfg: DictConfig) -> bool:
    """The process that writes outputs (worker ``0``); spawned helpers only evaluate."""
    return str(cfg.search.get("worker_id", "0")) == "0"


class WorkerPool:
    """The extra local worker processes of one search (``search.n_workers - 1`` of them)."""

    def __init__(self, procs: list[Any]) -> None:
        self.procs = procs

    def join(self) -> int:
        """Wait for every worker; return how many ended badly (their trials are recovered as stale)."""
        bad = 0
        for p in self.procs:
            p.join()
            if p.exitcode != 0:
                bad += 1
                log.warning(
                    "worker %s exited with code %s; its unfinished trial is recovered as stale",
                    p.name,
                    p.exitcode,
                )
        return bad


def start_workers(
    cfg: DictConfig, *, run_dir: Path, url: str, run: Callable[[DictConfig], Any]
) -> WorkerPool:
    """Start ``search.n_workers - 1`` spawned processes that each call ``run(cfg)`` (the search task's own
    entry, passed down so this layer never imports the task) on the study at ``url``. ``run`` must be a
    module-level function: it is pickled by name into the spawned process."""
    n = int(cfg.search.get("n_workers", 1) or 1)
    if n <= 1 or not is_main_worker(cfg):
        return WorkerPool([])
    base = OmegaConf.to_container(cfg, resolve=True)  # ${hydra:...} only resolves in this process
    ctx = mp.get_context("spawn")
    procs = []
    for i in range(1, n):
        p = ctx.Process(
            target=_worker_main, args=(base, str(i), str(run_dir), url, run), name=f"hwnas-worker-{i}"
        )
        p.start()
        procs.append(p)
    log.info("started %d extra worker process(es) on %s", len(procs), run_dir)
    return WorkerPool(procs)


def _worker_main(
    container: dict[str, Any], worker_id: str, run_dir: str, url: str, run: Callable[[DictConfig], Any]
) -> None:
    """Entry of a spawned worker: same config, its own sampler seed, no outputs (the main process writes them)."""
    cfg = OmegaConf.create(container)
    with open_dict(cfg):
        cfg.run_dir = run_dir
        cfg.search.storage = url
        cfg.search.resume = None
        cfg.search.worker_id = worker_id
        cfg.logger = None
        sampler = cfg.search.get("sampler")
        if sampler is not None and sampler.get("seed") is not None:
            sampler.seed = int(sampler.seed) + 1000 * int(
                worker_id
            )  # same seed = same proposals = duplicates
    OmegaConf.set_struct(cfg, True)
    fmt = logging.Formatter(
        f"[%(asctime)s][%(name)s][worker {worker_id}][%(levelname)s] %(message)s", "%H:%M:%S"
    )
    handlers: list[logging.Handler] = [
        logging.FileHandler(Path(run_dir) / f"worker_{worker_id}.log"),
        logging.StreamHandler(sys.stderr),
    ]
    for h in handlers:
        h.setFormatter(fmt)
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True)
    from hwnas.utils.cli import quiet_third_party

    quiet_third_party()
    run(cfg)
