"""Rendering in parallel processes.

A 10,000-account render writes some 55,000 files, and nearly all of its time is Python building and
writing them, one CPU's worth. Targets do not depend on each other, so ``render_tree`` shares them
out among forked workers: each worker claims the next target, renders it and writes its files
straight into the staging directory, then hands back only the paths, its part of the manifest and
its notes. The result is assembled in target order, so bytes, manifest and notes are the same as in
one process. Removing the previous output after the swap is shared out the same way.

Work is claimed through a pipe holding one byte per item: a one-byte read from a pipe is atomic, so
each item goes to exactly one worker, and a worker that finishes early takes the next one. Forking
needs no pickling of the model; a worker ends with ``os._exit`` and never returns into the caller's
code. Any failure in a worker (a refused value, a full disk, Ctrl-C, SIGTERM) stops the others and is raised
in the parent, which then discards the staging directory as usual.

Why not ``concurrent.futures.ProcessPoolExecutor`` with the fork context: it is about as fast here
(docs/benchmarks.md), but before Python 3.14 (``kill_workers``) it has no public way to stop a
worker that is busy. After a failure or Ctrl-C, ``shutdown(cancel_futures=True)`` waits until the
running targets end, however long they take, and ``shutdown(wait=False)`` leaves them writing into
the staging directory while the parent removes it. Here the parent kills and reaps every worker
(``SIGKILL``, ``waitpid``) before the staging directory is cleaned up, and the workers need no
pickling of the work they are given.
"""

from __future__ import annotations

import gc
import os
import pickle
import shutil
import signal
import threading
import traceback
from typing import TYPE_CHECKING, Any, Callable, Iterable, NamedTuple, Sequence, TypeVar

from smtpconf.errors import RenderError
from smtpconf.render.outdir import STOP_SIGNALS

if TYPE_CHECKING:
    from smtpconf.render import RenderContext, Rendered

# Below this many files (accounts x targets) a render takes well under a second, and starting
# processes would not pay for itself.
PARALLEL_FROM = 2000

Item = TypeVar("Item")
Result = TypeVar("Result")


class TargetOutput(NamedTuple):
    """What a worker hands back for one target it rendered and wrote."""

    paths: list[str]
    manifest_lines: str  # this target's entries of the manifest (render.manifest_lines)
    notes: list[str]


def default_workers(files: int) -> int:
    """One worker per CPU this process may run on, for a render of about ``files`` files."""
    if files < PARALLEL_FROM or not hasattr(os, "fork"):
        return 1
    # Forking a process that runs other threads can leave a lock held forever in the child.
    if threading.active_count() > 1:
        return 1
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cpus)


def render_tree(ctx: RenderContext, targets: list[str], root: str, workers: int, notes: list[str]) -> Rendered:
    """Render ``targets`` into ``root`` with up to ``workers`` processes; their notes, in target
    order, go into ``notes``."""
    from smtpconf.render import Rendered, manifest_from_lines

    # The file's model and everything lint left behind stay alive until the render ends: frozen,
    # the garbage collector does not walk them again and again while the render allocates (see
    # docs/benchmarks.md), and forked workers leave their memory shared.
    gc.freeze()
    try:
        outputs = map_in_workers(targets, lambda name: render_and_write(ctx, name, root), workers)
    finally:
        gc.unfreeze()
    for output in outputs:
        notes.extend(output.notes)
    return Rendered([path for output in outputs for path in output.paths],
                    manifest_from_lines([output.manifest_lines for output in outputs]))


def render_and_write(ctx: RenderContext, name: str, root: str) -> TargetOutput:
    from smtpconf.render import manifest_lines, render_target, write_files

    files, notes = render_target(ctx, name)
    write_files(root, files)
    return TargetOutput([f.path for f in files], manifest_lines(files), notes)


def remove_tree(path: str, workers: int) -> None:
    """``shutil.rmtree(path, ignore_errors=True)``, its top-level entries shared out among workers:
    replacing a 55,000-file output means deleting the old one."""
    try:
        entries = [os.path.join(path, name) for name in os.listdir(path)]
    except OSError:
        entries = []
    map_in_workers(entries, lambda entry: shutil.rmtree(entry, ignore_errors=True), workers)
    shutil.rmtree(path, ignore_errors=True)


def map_in_workers(items: Sequence[Item], work: Callable[[Item], Result], workers: int) -> list[Result]:
    """``[work(item) for item in items]``, with up to ``workers`` processes (this one included)."""
    workers = min(workers, len(items))
    if workers <= 1:
        return [work(item) for item in items]
    if len(items) > 255:
        raise ValueError("one byte names an item: at most 255 items")
    claims, offer = os.pipe()
    os.write(offer, bytes(range(len(items))))  # at most 255 bytes: never blocks
    os.close(offer)
    children: dict[int, int] = {}  # pid -> the read end of its result pipe
    try:
        for _ in range(workers - 1):
            read_end, write_end = os.pipe()
            # Ctrl-C, SIGTERM and SIGHUP are held back across the fork, so that a worker meets them
            # only inside _work, which turns them into a report, never in the caller's code it was
            # forked from. They are also held back until the worker is registered, to be stopped
            # on any failure. The caller may hold them itself (a clean-up that must finish): then
            # they stay held, here and in the worker.
            mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
            try:
                pid = os.fork()
                if pid == 0:  # the worker, which never returns from _work
                    os.close(read_end)
                    _work(items, work, claims, write_end, mask)
                children[pid] = read_end
            except OSError:  # no more processes to be had: the ones there are do the work
                os.close(read_end)
                break
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
                os.close(write_end)
        results = _claim(items, work, claims)
        for pid, read_end in list(children.items()):
            with open(read_end, "rb", closefd=False) as stream:
                data = stream.read()  # before waiting: a worker may block on a full pipe
            _, status = os.waitpid(pid, 0)
            del children[pid]
            os.close(read_end)
            results.update(_outcome(data, status))
        return [results[index] for index in range(len(items))]
    finally:
        os.close(claims)
        for pid, read_end in children.items():  # only after a failure: stop the others
            os.close(read_end)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def _claim(items: Sequence[Item], work: Callable[[Item], Result], claims: int) -> dict[int, Result]:
    results = {}
    while claim := os.read(claims, 1):
        results[claim[0]] = work(items[claim[0]])
    return results


def _work(items: Sequence[Item], work: Callable[[Item], Any], claims: int, results: int,
          mask: Iterable[int]) -> None:
    """A worker's whole life: claim items until none are left, report, exit."""
    code = 1
    try:
        outcome: tuple[Any, ...]
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            outcome = ("ok", _claim(items, work, claims))
        except RenderError as exc:
            outcome = ("render-error", str(exc))
        except OSError as exc:
            outcome = ("os-error", exc.errno, exc.strerror, exc.filename)
        except KeyboardInterrupt:
            outcome = ("interrupted",)
        except BaseException:  # a bug of ours: the parent reports it
            outcome = ("crashed", traceback.format_exc())
        with os.fdopen(results, "wb") as stream:
            pickle.dump(outcome, stream, protocol=pickle.HIGHEST_PROTOCOL)
        code = 0
    finally:
        os._exit(code)  # never return into the parent's code (its cleanup, its tests)


def _outcome(data: bytes, status: int) -> dict[int, Any]:
    """A worker's results, or its failure raised here."""
    if not data:
        raise RuntimeError(f"a render worker ended without a result (wait status {status})")
    outcome = pickle.loads(data)
    kind = outcome[0]
    if kind == "ok":
        results: dict[int, Any] = outcome[1]
        return results
    if kind == "render-error":
        raise RenderError(outcome[1])
    if kind == "os-error":
        raise OSError(outcome[1], outcome[2], outcome[3])
    if kind == "interrupted":
        raise KeyboardInterrupt
    raise RuntimeError(f"a render worker failed:\n{outcome[1]}")
