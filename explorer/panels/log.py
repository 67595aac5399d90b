"""Messages: a log dock with every message, and a dismissable banner for warnings and errors (non-modal;
the app keeps its model and state)."""
from __future__ import annotations

import time

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPlainTextEdit, QToolButton, QVBoxLayout, QWidget

from ..state import AppState

_COLOURS = {"warning": ("#fff4d6", "#8a6100"), "error": ("#fde2e1", "#9b1c1c"), "info": ("#e6f0ff", "#1d4f91")}


class LogPanel(QWidget):
    """Every message with a timestamp, newest last."""

    def __init__(self, state: AppState, parent=None):
        super().__init__(parent)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setObjectName("log_text")
        self.text.setMaximumBlockCount(2000)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.text)
        for level, msg in state.log:
            self.append(level, msg)
        state.message.connect(self.append)

    def append(self, level: str, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        self.text.appendPlainText(f"{stamp}  {level.upper():7s} {text}")


class MessageBanner(QFrame):
    """A one-line banner above the central view; hidden until a warning or error arrives; × hides it."""

    def __init__(self, state: AppState, parent=None):
        super().__init__(parent)
        self.setObjectName("message_banner")
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.close_button = QToolButton()
        self.close_button.setText("✕")
        self.close_button.setAutoRaise(True)
        self.close_button.setToolTip("Dismiss")
        self.close_button.clicked.connect(self.hide)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(8, 3, 4, 3)
        lay.addWidget(self.label, 1)
        lay.addWidget(self.close_button, 0, Qt.AlignTop)
        self.level = ""
        self.hide()
        state.message.connect(self.show_message)

    def show_message(self, level: str, text: str) -> None:
        if level not in ("warning", "error"):
            return
        bg, fg = _COLOURS[level]
        self.level = level
        self.setStyleSheet(f"#message_banner {{ background: {bg}; border-bottom: 1px solid {fg}; }}"
                           f" QLabel {{ color: {fg}; }}")
        self.label.setText(("⚠ " if level == "warning" else "✖ ") + text)
        self.show()

    @property
    def text(self) -> str:
        return self.label.text()
