"""Images and masks into the inpainting panel: files opened, dropped or pasted, and images pasted from
the clipboard, as :class:`ImageInput`, a mixin of :class:`~.panel.InpaintPanel`.

A file is read off the GUI thread (:func:`explorer.workers.run_task`): the decode is bounded in time
and content-checked by the library (:mod:`models.files.images`), but a slow or hostile file may take
up to its time limit, and the window must keep running meanwhile. An image is also fitted to the
model there (:class:`.image_page.Ready`: resizing a large photo takes a while too). While a file is
being read the panel says "reading NAME …" (side column and status bar) and will not run. When a read
lands it is applied as an open always was; a failure posts the library's message, which names the
file. A newer read of the same kind (image, mask) supersedes an older one still reading (its result
is dropped when it comes); reads of different kinds are applied in the order they were started; a
new model drops them all.

Images already in memory (a pasted QImage) are converted on the GUI thread, after a size check.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shiboken6
from PySide6.QtCore import QMimeData, Qt
from PySide6.QtGui import QGuiApplication, QImage
from PySide6.QtWidgets import QFileDialog

from models import images as img
from models.files import IMAGE_EXTENSIONS
from models.files.images import MAX_IMAGE_PIXELS

from ...workers import run_task
from .image_page import Ready


def qimage_to_array(image: QImage) -> np.ndarray:
    """A QImage → uint8 [H, W, 3] (alpha dropped)."""
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    w, h, bpl = image.width(), image.height(), image.bytesPerLine()
    buf = np.frombuffer(image.constBits(), dtype=np.uint8, count=h * bpl).reshape(h, bpl)
    return buf[:, : w * 3].reshape(h, w, 3).copy()


# the readers (in a worker thread; tests replace them to make a read slow)
def read_image(path: Path) -> np.ndarray:
    """An image file → float32 [C, H, W] in [0, 1]. Raises DataError naming the file."""
    return img.coerce_image(path)


def read_ready_image(path: Path, key: tuple) -> tuple[np.ndarray, Ready]:
    """An image file read, and prepared for the image page's settings ``key`` (:class:`.image_page.Ready`)."""
    px = read_image(path)
    return px, Ready(px, key)


def read_mask(path: Path) -> np.ndarray:
    """A mask file → bool [H, W] at its own size, True = known (white). Raises DataError naming the file."""
    return img.read_mask(path)


@dataclass(eq=False)
class _Read:
    """A file being read: its kind ("image" or "mask"), path, and (ok, result or exception) once landed."""

    kind: str
    path: Path
    outcome: tuple | None = None

    @property
    def name(self) -> str:
        return self.path.name


class ImageInput:
    """Opening, dropping and pasting images and masks (see the module docstring). Mixed into
    :class:`~.panel.InpaintPanel`, whose ``state``, ``page``, ``image_page``, ``status_label``,
    ``loaded`` signal, ``_drop_run`` and ``_update_run_btn`` it uses."""

    def _init_input(self) -> None:
        self._reads: list[_Read] = []  # in the order they were started
        self._busy_text = ""

    @property
    def reading(self) -> str:
        """The names of the files being read ("" when none)."""
        return ", ".join(r.name for r in self._reads)

    # =========================================================================================
    # files, read in a worker
    def open_image(self, path) -> bool:
        """Start reading an image file for the image page; True if the read started. When it lands the
        image is used (:attr:`loaded` is emitted either way); on failure the message is posted and the
        current image is kept."""
        if self.page != "image":
            self.state.post("warning", f"{Path(path).name}: images are for image models; this model's data is "
                                       "not images")
            return False
        return self._start_read("image", path)

    def load_mask(self, path) -> bool:
        """Start reading a mask PNG (white = known); when it lands it is resized to the mask's shape and
        replaces the mask as one undoable action. True if the read started."""
        return self._start_read("mask", path)

    def _start_read(self, kind: str, path) -> bool:
        read = _Read(kind, Path(path))
        for old in [r for r in self._reads if r.kind == kind]:
            self._reads.remove(old)
            self.state.post("info", f"inpainting: reading {read.name} instead of {old.name} (still reading; dropped)")
        self._reads.append(read)
        self._show_reading()
        if kind == "image":  # fitted to the model there too: a large photo's resize would stall the window
            args = (read_ready_image, read.path, self.image_page.ready_key())
        else:
            args = (read_mask, read.path)
        run_task(*args, on_result=lambda v, r=read: self._landed(r, True, v),
                 on_error=lambda e, r=read: self._landed(r, False, e))
        return True

    def _landed(self, read: _Read, ok: bool, value) -> None:
        """A read ended (on the GUI thread): apply it, and any later one that waited for it, in order."""
        if not shiboken6.isValid(self) or read not in self._reads:  # superseded, dropped, or the panel is gone
            return
        read.outcome = (ok, value)
        while self._reads and self._reads[0].outcome is not None:
            r = self._reads.pop(0)
            ok, value = r.outcome
            r.outcome = None  # the image or exception is not kept with the record
            done = self._apply(r, value) if ok else self._failed(r, value)
            self._show_reading()
            self.loaded.emit(r.name, done)

    def _apply(self, r: _Read, value) -> bool:
        if r.kind == "image":
            px, ready = value
            return self._accept(px, r.name, ready)
        mm = self.image_page.mask_model
        try:
            mm.set_known(img.resize_mask(value, mm.shape), "load")
        except ValueError as e:
            self.state.post("error", f"{r.path}: {e}")
            return False
        self.state.post("info", f"inpainting: mask loaded from {r.name}")
        return True

    def _failed(self, r: _Read, exc: BaseException) -> bool:
        text = str(exc) if isinstance(exc, (ValueError, OSError)) else f"cannot read it ({type(exc).__name__}: {exc})"
        self.state.post("error", text if r.name in text else f"{r.path}: {text}")
        return False

    def _drop_reads(self) -> None:
        """Forget the reads in progress (a new model): their results are dropped when they come."""
        self._reads.clear()
        self._show_reading()

    def _show_reading(self) -> None:
        text = f"reading {self.reading} …" if self._reads else ""
        if text or self.status_label.text().startswith("reading "):
            self.status_label.setText(text)
        s = self.state
        if s.busy in ("", self._busy_text) and s.busy != text:  # never over another job's busy text
            s.set_busy(text)
        self._busy_text = text
        self._update_run_btn()

    # =========================================================================================
    # images in memory
    def set_image(self, array, name: str = "image") -> bool:
        """Use an array ([H, W], [H, W, C] or [C, H, W]; uint8, uint16 or float in [0, 1])."""
        try:
            px = img.coerce_image(array, what=name)
        except ValueError as e:
            self.state.post("error", str(e))
            return False
        return self._accept(px, name)

    def _accept(self, px: np.ndarray, name: str, ready: Ready | None = None) -> bool:
        if self.page != "image":
            self.state.post("warning", f"{name}: images are for image models; this model's data is not images")
            return False
        self._drop_run()
        err = self.image_page.accept(px, name, ready)
        if err is not None:
            self.state.post("error", err)
            return False
        self.state.post("info", f"inpainting: opened {name}")
        return True

    # =========================================================================================
    # clipboard and drops
    def paste(self) -> bool:
        """Paste an image (used now) or an image file's path (read in a worker) from the clipboard."""
        return self._open_mime(QGuiApplication.clipboard().mimeData(), "the clipboard")

    def _open_mime(self, md: QMimeData | None, where: str) -> bool:
        if md is not None and md.hasUrls():
            files = [u.toLocalFile() for u in md.urls() if u.isLocalFile()]
            if files:
                return self.open_image(files[0])
        if md is not None and md.hasImage():
            im = md.imageData()
            if isinstance(im, QImage) and not im.isNull():
                name = f"image from {where}"
                w, h = im.width(), im.height()
                if w * h > MAX_IMAGE_PIXELS:  # before the copy
                    self.state.post("error", f"{name}: the image is {w}×{h} = {w * h:,} pixels, more than the "
                                             f"limit of {MAX_IMAGE_PIXELS:,}")
                    return False
                return self.set_image(qimage_to_array(im), name)
        self.state.post("error", f"{where} holds no image or image file")
        return False

    def _takes(self, md: QMimeData) -> bool:
        """Image files and pasted images are the image page's; anything else (a model, data) goes on to
        the window."""
        if self.page != "image":
            return False
        if md.hasUrls():
            files = [u.toLocalFile() for u in md.urls() if u.isLocalFile()]
            return bool(files) and Path(files[0]).suffix.lower() in IMAGE_EXTENSIONS
        return md.hasImage()

    def dragEnterEvent(self, ev):  # noqa: N802
        if self._takes(ev.mimeData()):
            ev.setDropAction(Qt.DropAction.CopyAction)  # a copy, never a move of the user's file (as the window)
            ev.accept()
        else:
            ev.ignore()

    def dragMoveEvent(self, ev):  # noqa: N802
        self.dragEnterEvent(ev)

    def dropEvent(self, ev):  # noqa: N802
        if self._takes(ev.mimeData()) and self._open_mime(ev.mimeData(), "the drop"):
            ev.setDropAction(Qt.DropAction.CopyAction)
            ev.accept()
        else:
            ev.ignore()

    # =========================================================================================
    # dialogs and saving the mask
    def save_mask(self, path) -> bool:
        try:
            self.image_page.mask_model.save(path)
        except (OSError, ValueError) as e:
            self.state.post("error", f"{path}: cannot save the mask: {e}")
            return False
        self.state.post("info", f"inpainting: mask saved to {path}")
        return True

    def _open_dialog(self):
        exts = " ".join(f"*{e}" for e in sorted(IMAGE_EXTENSIONS))
        path, _ = QFileDialog.getOpenFileName(self, "Open image", "", f"Images ({exts});;All files (*)")
        if path:
            self.open_image(path)

    def _load_mask_dialog(self):
        path, _ = QFileDialog.getOpenFileName(self, "Load mask", "", "PNG images (*.png);;All files (*)")
        if path:
            self.load_mask(path)

    def _save_mask_dialog(self):
        path, _ = QFileDialog.getSaveFileName(self, "Save mask", "mask.png", "PNG images (*.png)")
        if path:
            self.save_mask(path)
