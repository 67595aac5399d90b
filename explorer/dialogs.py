"""The questions the app asks a person: Save/Discard/Cancel before a trained model is replaced or the
window closes, and file dialogs that start in the folder last used for each kind of file (kept in
the settings across runs). The answers go to the :class:`explorer.controller.Controller`."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from models.paths import MODELS_DIR

from .settings import get_str, set_str

DATA_FILTER = ("Data (*.npy *.csv *.h5 *.hdf5 *.png *.jpg *.jpeg *.tif *.tiff *.bmp *.gif *.webp *.pgm *.ppm);;"
               "All files (*)")
FOLDER_KINDS = ("data", "model", "trajectory", "export")


def _inside(path, folder: Path) -> bool:
    try:
        return Path(path).resolve().is_relative_to(folder.resolve())
    except (OSError, ValueError):
        return False


class Dialogs:
    def __init__(self, parent: QWidget, settings: QSettings, state, controller):
        self.parent = parent
        self.settings = settings
        self.state = state
        self.controller = controller

    def ask_save(self, reason: str = "close") -> str:
        """"save", "discard" or "cancel" for a trained, unsaved model. With no one to answer
        (offscreen), "discard"; tests patch it."""
        if QGuiApplication.platformName() in ("offscreen", "minimal"):
            return "discard"
        box = self.save_question(reason)
        box.exec()
        return {box.button(QMessageBox.Save): "save",
                box.button(QMessageBox.Discard): "discard"}.get(box.clickedButton(), "cancel")

    def save_question(self, reason: str = "close") -> QMessageBox:
        """The Save / Discard / Cancel box (not shown): Save is the default (Enter), Esc or closing the
        box is Cancel (nothing happens). ``reason``: what would replace the model ("open the bark
        preset", "start a new model", …) or "close"."""
        s = self.state
        busy = s.training in ("running", "paused", "stopping")
        what = "closing" if reason == "close" else f"you {reason}"
        box = QMessageBox(QMessageBox.Question, "Save the trained model?",
                          f"Save the trained model before {what}?",
                          QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel, self.parent)
        run = "Training is still running; it stops first. " if busy else ""
        kept = (f" ({s.model_path.name} holds it as it was opened or last saved)" if s.model_path is not None
                else "")
        box.setInformativeText(f"{run}It is trained to iteration {s.iteration:,}; the training done here is in "
                               f"no file yet{kept}.\n\nDiscard loses that training; Cancel goes back to it.")
        box.button(QMessageBox.Save).setText("Save…")
        box.button(QMessageBox.Discard).setText("Discard")
        box.setDefaultButton(QMessageBox.Save)
        box.setEscapeButton(QMessageBox.Cancel)
        return box

    def folder(self, kind: str) -> str:
        """The folder the ``kind`` dialog starts in: the last one used, else the bundled models (for
        models) or the home folder."""
        default = str(MODELS_DIR) if kind == "model" and MODELS_DIR.exists() else str(Path.home())
        return get_str(self.settings, f"dirs/{kind}", default) or default

    def remember(self, kind: str, path) -> None:
        p = Path(path)
        set_str(self.settings, f"dirs/{kind}", str(p if p.is_dir() else p.parent))

    def ask_path(self, kind: str, title: str, filt: str = "", *, save_name: str | None = None,
                 folder: bool = False) -> str | None:
        start = self.folder(kind)
        if save_name is not None and _inside(start, MODELS_DIR):  # never suggest replacing a bundled model
            start = str(Path.home())
        if folder:
            path = QFileDialog.getExistingDirectory(self.parent, title, start)
        elif save_name is not None:
            path, _ = QFileDialog.getSaveFileName(self.parent, title, str(Path(start) / save_name), filt)
        else:
            path, _ = QFileDialog.getOpenFileName(self.parent, title, start, filt)
        if not path:
            return None
        self.remember(kind, path)
        return path

    def _name(self, suffix: str) -> str:
        return f"{self.state.session_name.removesuffix('.h5')}{suffix}"

    def save_path(self) -> Path | None:
        path = self.ask_path("model", "Save model", "Models (*.h5)", save_name=self._name(".h5"))
        return Path(path) if path else None

    # ---- File menu entries -------------------------------------------------------------------
    def choose_data_file(self) -> None:
        if path := self.ask_path("data", "Open data", DATA_FILTER):
            self.controller.open_data(path)

    def choose_data_folder(self) -> None:
        if path := self.ask_path("data", "Open a folder of images", folder=True):
            self.controller.open_data(path)

    def choose_model_file(self) -> None:
        if path := self.ask_path("model", "Open model", "Models (*.h5 *.hdf5);;All files (*)"):
            self.controller.open_model(path)

    def choose_save_model(self) -> None:
        if path := self.save_path():
            self.controller.save_model_to(path)

    def choose_trajectory_file(self) -> None:
        if path := self.ask_path("trajectory", "Open trajectory", "Trajectories (*.h5 *.hdf5);;All files (*)"):
            self.parent.open_trajectory(path)

    def choose_export_trajectory(self) -> None:
        name = self._name(f"_{self.state.direction}_trajectory.h5")
        if path := self.ask_path("trajectory", "Export trajectory", "HDF5 (*.h5)", save_name=name):
            self.controller.export_trajectory(path)

    def choose_export_gif(self) -> None:
        name = self._name(f"_{self.state.direction}.gif")
        if path := self.ask_path("export", "Export animation", "GIF (*.gif)", save_name=name):
            self.parent.export_gif(path)
