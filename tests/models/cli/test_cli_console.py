"""models/cli/console.py: progress only on a terminal, outputs that would replace inputs, extensions."""
from __future__ import annotations

import io
import json
import os
import signal

import pytest

from models.cli.console import CLIError, Console, check_out_path, graceful_stop, refuse_overwriting_inputs


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_is_drawn_on_a_terminal_only():
    tty, pipe = _Tty(), io.StringIO()
    for err in (tty, pipe):
        c = Console(err=err, out=io.StringIO())
        for item in c.track(range(5), 5, "sampling"):
            pass
        c.progress("evaluating ")("K", 3, 3)
        c.end()
    assert "sampling: 5/5" in tty.getvalue() and "K: 3/3" in tty.getvalue()
    assert pipe.getvalue() == ""
    quiet = _Tty()
    c = Console(quiet=True, err=quiet)
    list(c.track(range(3), 3, "x"))
    assert quiet.getvalue() == ""


def test_json_mode_prints_only_json():
    out = io.StringIO()
    c = Console(as_json=True, out=out, err=io.StringIO())
    c.print("human text")
    c.table({"a": 1.0})
    c.json({"K": float("nan"), "n": 3})
    assert json.loads(out.getvalue()) == {"K": None, "n": 3}


def test_outputs_that_would_replace_inputs_are_refused(tmp_path):
    a = tmp_path / "photo.png"
    a.write_bytes(b"x")
    link = tmp_path / "link.png"
    os.symlink(a, link)
    for out in (a, link, tmp_path / "." / "photo.png"):
        with pytest.raises(CLIError, match="replace the input"):
            refuse_overwriting_inputs([out], [a])
    with pytest.raises(CLIError, match="two different outputs"):
        refuse_overwriting_inputs([tmp_path / "o.png", tmp_path / "o.png"], [a])
    refuse_overwriting_inputs([tmp_path / "other.png", None], [a, None])


def test_extensions_in_any_case(tmp_path):
    assert check_out_path(tmp_path / "S.NPY", (".npy",), "x").name == "S.NPY"
    with pytest.raises(CLIError, match="must end in .npy"):
        check_out_path(tmp_path / "s.txt", (".npy",), "x")
    with pytest.raises(CLIError, match="does not exist"):
        check_out_path(tmp_path / "no" / "s.npy", (".npy",), "x")


def test_graceful_stop_turns_the_first_sigterm_into_a_request():
    seen = []
    before = signal.getsignal(signal.SIGTERM)
    with graceful_stop(seen.append):
        os.kill(os.getpid(), signal.SIGTERM)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
    assert seen == ["SIGTERM"]
    assert signal.getsignal(signal.SIGTERM) == before
