"""Run an OpenAI `python` grader's `grade(sample, item)` in a child process: never in the caller's process.

The child is a fresh interpreter (`python -I`) in an empty temporary folder with a minimal environment. Before
the grader's source runs it installs an audit hook that refuses every socket operation and every way of starting
another process, and caps its address space; the parent kills its whole process group at the timeout.

This keeps an honest grader off the network and bounded in time. It is not a sandbox against hostile code (a
C extension can bypass audit hooks): run a server that accepts graders from strangers in a container without
network, as OpenAI runs them in one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Any

DEFAULT_TIMEOUT_S = 30.0
MEMORY_LIMIT_BYTES = 2 * 1024**3
MAX_SOURCE_BYTES = 256 * 1024

# The child's program: read the job from stdin, lock itself down, run grade(), print one JSON line.
_RUNNER = r"""
import json, os, resource, sys, traceback
job = json.loads(sys.stdin.read())
try:
    resource.setrlimit(resource.RLIMIT_AS, (job["memory"], job["memory"]))
except (ValueError, OSError):
    pass
_DENIED = ("socket.", "subprocess.", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "os.system",
           "pty.spawn", "os.kill", "os.killpg")
def _deny(event, args):
    if event.startswith(_DENIED):
        raise PermissionError(f"the python grader may not use {event}: no network, no other processes")
sys.addaudithook(_deny)
out = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)  # the grader's own prints go to stderr; stdout carries only the result line
sys.stdout = sys.stderr
try:
    namespace = {"__name__": "grader"}
    exec(compile(job["source"], "<grader source>", "exec"), namespace)
    grade = namespace.get("grade")
    if not callable(grade):
        raise NameError("the source defines no function grade(sample, item)")
    result = {"score": float(grade(job["sample"], job["item"]))}
except BaseException as e:
    lines = traceback.format_exception(e)
    result = {"error": "".join(lines[-3:]).strip()[-2000:]}
out.write(json.dumps(result) + "\n")
out.flush()
"""


@dataclass
class SandboxResult:
    score: float | None
    error: str | None = None
    error_type: str | None = None  # "runtime" (the grader raised) | "timeout" | "server" (the child died)


def run_python_grader(source: str, sample: dict[str, Any], item: Any, *,
                      timeout_s: float = DEFAULT_TIMEOUT_S) -> SandboxResult:
    """grade(sample, item) of `source`, run in a locked-down child process killed after `timeout_s`."""
    job = json.dumps({"source": source, "sample": sample, "item": item, "memory": MEMORY_LIMIT_BYTES})
    with tempfile.TemporaryDirectory(prefix="tunesmith-grader-") as workdir:
        env = {"PATH": "/usr/bin:/bin", "HOME": workdir, "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1",
               "PYTHONDONTWRITEBYTECODE": "1"}
        proc = subprocess.Popen([sys.executable, "-I", "-c", _RUNNER], cwd=workdir, env=env, text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)  # its own process group: the timeout kills all of it
        try:
            stdout, stderr = proc.communicate(job, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            proc.communicate()
            return SandboxResult(None, f"grade() did not return within {timeout_s:g} s", "timeout")
    lines = [line for line in stdout.splitlines() if line.strip()]
    try:
        result = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        result = None
    if not isinstance(result, dict):
        return SandboxResult(None, f"the grader process ended (exit {proc.returncode}) without a result: "
                                   f"{stderr.strip()[-500:]}", "server")
    if "error" in result:
        return SandboxResult(None, str(result["error"]), "runtime")
    return SandboxResult(float(result["score"]))


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
