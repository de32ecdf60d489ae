"""Non-blocking pop-ups ("toasts") in the corner of the screen.

A `Toast` is a small frameless, always-on-top tool window that never takes the focus and is
never modal: it shows a title and a few lines, hides itself after `timeout_ms` (the countdown
pauses while the mouse is over it) and hides at once when clicked. A `ToastManager` owns the
live ones and stacks them upwards from the bottom-right corner of the screen (or of an anchor
window), oldest at the bottom; when one goes, the others close the gap.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from PySide6.QtCore import QEvent, QPoint, QRect, Qt, QTimer, Signal
from PySide6.QtGui import QEnterEvent, QGuiApplication, QMouseEvent, QPixmap
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QVBoxLayout, QWidget

log = structlog.get_logger(__name__)

DEFAULT_TIMEOUT_MS = 8_000
TOAST_WIDTH = 320
#: the side of a toast's picture (a face chip is 150 px; this is big enough to recognise)
TOAST_IMAGE_SIDE = 96

_STYLE = """
QFrame#toast {
    background: #1f2933;
    border: 1px solid #f5b800;
    border-radius: 6px;
}
QLabel { color: #f5f7fa; background: transparent; }
QLabel#toastTitle { color: #f5b800; font-weight: bold; font-size: 11pt; }
"""


class Toast(QFrame):
    """One pop-up. `dismissed` is emitted once, when it hides (timeout or click).

    `image`: an optional picture (a VIP's face) shown left of the text.
    """

    dismissed = Signal(object)  # the toast

    def __init__(
        self,
        title: str,
        lines: Sequence[str] = (),
        *,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        image: QPixmap | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowFlags(
            Qt.WindowType.Tool
            | Qt.WindowType.FramelessWindowHint
            | Qt.WindowType.WindowStaysOnTopHint
            | Qt.WindowType.WindowDoesNotAcceptFocus
        )
        self.setAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating, True)
        self.setAttribute(Qt.WidgetAttribute.WA_QuitOnClose, False)  # the app ends with its window
        self.setWindowModality(Qt.WindowModality.NonModal)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setObjectName("toast")
        self.setStyleSheet(_STYLE)
        self.setFixedWidth(TOAST_WIDTH)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip("Click to dismiss")
        self.title = title
        self.lines = list(lines)
        self.image: QLabel | None = None
        outer = QHBoxLayout(self)
        outer.setContentsMargins(14, 10, 14, 12)
        outer.setSpacing(10)
        if image is not None and not image.isNull():
            self.image = QLabel()
            self.image.setObjectName("toastImage")
            self.image.setPixmap(
                image.scaled(
                    TOAST_IMAGE_SIDE,
                    TOAST_IMAGE_SIDE,
                    Qt.AspectRatioMode.KeepAspectRatio,
                    Qt.TransformationMode.SmoothTransformation,
                )
            )
            self.image.setAlignment(Qt.AlignmentFlag.AlignTop)
            outer.addWidget(self.image)
        layout = QVBoxLayout()
        layout.setSpacing(3)
        outer.addLayout(layout, 1)
        heading = QLabel(title)
        heading.setObjectName("toastTitle")
        layout.addWidget(heading)
        for line in self.lines:
            label = QLabel(line)
            label.setWordWrap(True)
            layout.addWidget(label)
        self.setAccessibleName(title)
        self.setAccessibleDescription("\n".join(self.lines))
        self.timeout_ms = timeout_ms
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.dismiss)
        self._done = False

    def popup(self, at: QPoint | None = None) -> None:
        """Show without activating, and start the countdown."""
        self.adjustSize()
        if at is not None:
            self.move(at)
        self.show()
        self.raise_()
        if self.timeout_ms > 0:
            self._timer.start(self.timeout_ms)

    def dismiss(self) -> None:
        if self._done:
            return
        self._done = True
        self._timer.stop()
        self.hide()
        self.dismissed.emit(self)

    # --- events -------------------------------------------------------------------------

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self.dismiss()
            event.accept()
            return
        super().mousePressEvent(event)

    def enterEvent(self, event: QEnterEvent) -> None:
        self._timer.stop()  # let a reader finish
        super().enterEvent(event)

    def leaveEvent(self, event: QEvent) -> None:
        if not self._done and self.timeout_ms > 0:
            self._timer.start(max(self.timeout_ms // 2, 1_000))
        super().leaveEvent(event)


class ToastManager:
    """Shows toasts stacked in a corner and keeps them alive while they are shown.

    `anchor`: a window whose bottom-right corner the toasts use while it is visible; None,
    or hidden, means the bottom-right corner of the (anchor's, or primary) screen's free area.
    Toasts have no Qt parent so they stay visible while the anchor is minimised; call
    `clear()` when the owner closes. At most `max_visible` are shown: the oldest goes first.
    """

    def __init__(
        self,
        anchor: QWidget | None = None,
        *,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        margin: int = 16,
        spacing: int = 8,
        max_visible: int = 5,
        anchor_to_window: bool = False,
    ) -> None:
        self.anchor = anchor
        self.timeout_ms = timeout_ms
        self.margin = margin
        self.spacing = spacing
        self.max_visible = max_visible
        self.anchor_to_window = anchor_to_window
        self._live: list[Toast] = []  # oldest first: bottom of the stack

    def show_toast(
        self,
        title: str,
        lines: Sequence[str] = (),
        *,
        timeout_ms: int | None = None,
        image: QPixmap | None = None,
    ) -> Toast:
        timeout = self.timeout_ms if timeout_ms is None else timeout_ms
        toast = Toast(title, lines, timeout_ms=timeout, image=image)
        toast.dismissed.connect(self._forget)
        self._live.append(toast)
        while len(self._live) > self.max_visible:
            self._live[0].dismiss()  # `_forget` removes it
        toast.adjustSize()
        self._layout()
        toast.popup()
        log.info("toast_shown", title=title, live=len(self._live))
        return toast

    def visible_toasts(self) -> list[Toast]:
        return [t for t in self._live if t.isVisible()]

    def clear(self) -> None:
        for toast in list(self._live):
            toast.dismiss()

    def _forget(self, toast: object) -> None:
        if isinstance(toast, Toast) and toast in self._live:
            self._live.remove(toast)
            toast.deleteLater()
            self._layout()

    def _area(self) -> QRect:
        anchor = self.anchor
        if self.anchor_to_window and anchor is not None and anchor.isVisible():
            return anchor.frameGeometry()
        screen = anchor.screen() if anchor is not None else None
        screen = screen or QGuiApplication.primaryScreen()
        if screen is None:  # no screen at all (should not happen even offscreen)
            return QRect(0, 0, 1280, 800)
        return screen.availableGeometry()

    def _layout(self) -> None:
        area = self._area()
        bottom = area.bottom() - self.margin
        for toast in self._live:
            size = toast.size()  # adjusted to its contents before it was first laid out
            top = bottom - size.height() + 1
            toast.move(QPoint(area.right() - self.margin - size.width() + 1, top))
            bottom = top - self.spacing
